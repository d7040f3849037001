"""The Vision Transformer (ViT) as MindSpore Cells, one Cell per box of the paper's diagram.

    image [B,C,H,W] -> PatchEmbed -> [B,N,D] -> prepend class token -> [B,1+N,D] -> + position embedding
      -> Block x depth (LayerNorm -> Attention -> DropPath -> +, LayerNorm -> Mlp -> DropPath -> +)
      -> LayerNorm -> class token (or mean of patch tokens) -> [pre-logits Dense+tanh] -> head -> logits

Parameter names follow timm/mindcv (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.{i}.attn.qkv``,
...), so published weights map onto this model one to one. The Dense, LayerNorm, GELU and Conv2d layers come from
``layer_set``: MindSpore's own, or, on the CPU, drop-in versions that compute the same faster (vit_ms/kernels).
"""
import math
from types import SimpleNamespace

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal, initializer

from . import kernels
from .checks import check_int, check_numerics, check_rate
from .config import IMAGENET_MEAN, IMAGENET_STD
from .device import flash_attention_support
from .versions import set_gelu_form

_BATCH_MATMUL_NT = ops.BatchMatMul(transpose_b=True)  # q @ k.T without materialising k.T


def layer_set(cpu_kernels=None):
    """The layers a model is built from: MindSpore's nn.Dense, nn.LayerNorm, nn.GELU and nn.Conv2d, or, on the CPU,
    vit_ms.kernels' versions (same parameters, same results, faster there) and ``fused_attention`` (all heads in one
    kernel). This is the one speed switch: ``cpu_kernels`` True/False, or None to let ``use_cpu_kernels`` decide."""
    if kernels.use_cpu_kernels(cpu_kernels):
        return kernels.cpu_layers()
    return SimpleNamespace(Dense=nn.Dense, LayerNorm=nn.LayerNorm, GELU=nn.GELU, Conv2d=nn.Conv2d, fused_attention=None)


def _trunc_normal(shape, std, a=-2.0, b=2.0):
    """float32 Tensor from normal(0, std) truncated to [a, b] (absolute bounds, like timm's trunc_normal_). NumPy
    draws it faster than MindSpore's initializer; the seed comes from NumPy's global state (np.random.seed)."""
    rng = np.random.default_rng(np.random.randint(1 << 62))
    x = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
    outside = (x < a) | (x > b)
    while outside.any():  # redraw the few values outside the bounds: the distribution stays exactly truncated
        x[outside] = rng.standard_normal(int(outside.sum()), dtype=np.float32) * np.float32(std)
        outside = (x < a) | (x > b)
    return Tensor(x)


def _dense(layers, in_dim, out_dim):
    """Dense with timm's initialisation: trunc-normal(0.02) weight, zero bias (drawn once, at construction)."""
    return layers.Dense(in_dim, out_dim, weight_init=_trunc_normal((out_dim, in_dim), 0.02), bias_init="zeros",
                        has_bias=True)


class PatchEmbed(nn.Cell):
    """Cut the image into patch_size x patch_size patches and project each to a D-vector.

    A convolution with kernel = stride = patch_size is exactly "flatten each patch, then one Dense layer".
    """

    def __init__(self, image_size=224, patch_size=16, in_chans=3, embed_dim=768, layers=None):
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(f"image_size must be divisible by patch_size, got image_size={image_size}, "
                             f"patch_size={patch_size}")
        layers = layers or layer_set()
        self.image_size = image_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.grid_size = (image_size // patch_size, image_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = layers.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, pad_mode="valid",
                                  has_bias=True)

    def construct(self, x):
        if x.ndim != 4:
            raise ValueError(f"expected a 4-D image batch [B, C, H, W], got a {x.ndim}-D tensor of shape {x.shape}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"expected {self.in_chans} input channels (shape [B, {self.in_chans}, H, W]), "
                             f"got {x.shape[1]} (input shape {x.shape})")
        if x.shape[2] % self.patch_size != 0 or x.shape[3] % self.patch_size != 0:
            raise ValueError(f"image height and width must be divisible by the patch size {self.patch_size}, "
                             f"got {x.shape[2]}x{x.shape[3]}")
        if x.shape[2] != self.image_size or x.shape[3] != self.image_size:
            raise ValueError(f"this model's position embedding is built for {self.image_size}x{self.image_size} "
                             f"images, got {x.shape[2]}x{x.shape[3]}; create the model with "
                             f"image_size={x.shape[2]} (position embeddings are resampled when loading weights) "
                             f"or resize the input")
        x = self.proj(x)                                   # [B, D, gh, gw]
        x = x.reshape(x.shape[0], x.shape[1], -1)          # [B, D, N], patches in row-major grid order
        return x.transpose(0, 2, 1)                        # [B, N, D]


class Attention(nn.Cell):
    """Multi-head self-attention: softmax(q @ k.T / sqrt(head_dim)) @ v in every head, with one fused qkv Dense."""

    def __init__(self, dim, num_heads=12, attn_drop=0.0, proj_drop=0.0, layers=None):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"embed_dim must be divisible by num_heads, got embed_dim={dim}, num_heads={num_heads}")
        layers = layers or layer_set()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = _dense(layers, dim, dim * 3)
        self.attn_drop = nn.Dropout(p=attn_drop)
        self.proj = _dense(layers, dim, dim)
        self.proj_drop = nn.Dropout(p=proj_drop)
        # Ascend chips that have it (decided at build, from the device): MindSpore's fused kernel, float16/bfloat16
        self.flash_attention = flash_attention_support()[0] and attn_drop == 0.0 and self.head_dim % 16 == 0
        # CPU: the same computation in one vit_ms C++ kernel (float32, without attention dropout)
        self.fused = layers.fused_attention() if layers.fused_attention and attn_drop == 0.0 else None

    def heads(self, x):
        """Queries, keys and values, each [B, heads, T, head_dim]."""
        b, t, _ = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).transpose(2, 0, 3, 1, 4)
        return ops.unstack(qkv, 0)                         # unstack: indexing qkv[0] is slower on CPU

    def softmax_scores(self, q, k):
        scores = _BATCH_MATMUL_NT(q * self.scale, k)
        # softmax in float32 even under mixed precision: fp16 exp overflows on large scores
        return ops.softmax(scores.astype(ms.float32), axis=-1).astype(q.dtype)

    def attention_probs(self, x):
        """Softmax attention weights [B, heads, T, T] and values [B, heads, T, head_dim]."""
        q, k, v = self.heads(x)
        return self.softmax_scores(q, k), v

    def construct(self, x):
        b, t, d = x.shape
        if self.fused is not None and x.dtype == ms.float32:  # the else branch's computation in one CPU kernel
            out = self.fused(self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim))
        else:
            q, k, v = self.heads(x)
            if self.flash_attention and q.dtype != ms.float32:
                out = ops.flash_attention_score(q, k, v, self.num_heads, scalar_value=self.scale, input_layout="BNSD")
            else:
                out = ops.matmul(self.attn_drop(self.softmax_scores(q, k)), v)  # [B, heads, T, head_dim]
            out = out.transpose(0, 2, 1, 3)                # [B, T, heads, head_dim]
        return self.proj_drop(self.proj(out.reshape(b, t, d)))  # heads merged back: [B, T, D]


class Mlp(nn.Cell):
    """Dense(D, 4D) -> GELU -> Dropout -> Dense(4D, D) -> Dropout."""

    def __init__(self, dim, hidden_dim, drop=0.0, gelu_approximate=False, layers=None):
        super().__init__()
        layers = layers or layer_set()
        self.fc1 = _dense(layers, dim, hidden_dim)
        self.act = layers.GELU(approximate=gelu_approximate)
        self.drop1 = nn.Dropout(p=drop)
        self.fc2 = _dense(layers, hidden_dim, dim)
        self.drop2 = nn.Dropout(p=drop)

    def construct(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class DropPath(nn.Cell):
    """Stochastic depth: in training, zero the whole residual branch for a random subset of samples.

    Kept samples are scaled by 1/keep so the expected output is unchanged; identity in eval. The uniform numbers, one
    per sample: ``noise`` (training's, keyed by seed and step, so a resume repeats them), else its own kernel's."""

    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = check_rate(drop_prob, "drop_path_rate")
        # seeded from NumPy's global state like the weights (nn.Dropout's CPU kernel does not repeat under a seed)
        self.uniform = None
        if self.drop_prob > 0.0:
            seed, seed2 = (int(s) for s in np.random.randint(1, 2 ** 31 - 1, size=2))
            self.uniform = ops.UniformReal(seed=seed, seed2=seed2)

    def construct(self, x, noise=None):
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        uniform = self.uniform(shape) if noise is None else noise.reshape(shape)
        mask = ops.floor(uniform + keep)                   # 1 with probability keep, else 0 (one per sample)
        return x * (mask / keep).astype(x.dtype)


class Block(nn.Cell):
    """Encoder block (pre-norm): x + DropPath(Attention(LN(x))), then x + DropPath(Mlp(LN(x)))."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, drop=0.0, attn_drop=0.0, drop_path=0.0,
                 norm_eps=1e-6, gelu_approximate=False, layers=None):
        super().__init__()
        layers = layers or layer_set()
        self.norm1 = layers.LayerNorm((dim,), epsilon=norm_eps)
        self.attn = Attention(dim, num_heads, attn_drop=attn_drop, proj_drop=drop, layers=layers)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = layers.LayerNorm((dim,), epsilon=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop, gelu_approximate=gelu_approximate, layers=layers)
        self.drop_path2 = DropPath(drop_path)

    def construct(self, x, noise=None):  # noise: None, or [2, B] numbers for the two DropPaths
        noise1, noise2 = (None, None) if noise is None else (noise[0], noise[1])
        x = x + self.drop_path1(self.attn(self.norm1(x)), noise1)
        return x + self.drop_path2(self.mlp(self.norm2(x)), noise2)


class VisionTransformer(nn.Cell):
    """ViT. The constructor arguments are the whole configuration (see ``vit_ms.factory`` for the named sizes).

    Initialisation follows timm: trunc-normal(0.02) for the position embedding and every Dense weight (head
    included), zero biases; the class token starts at normal(1e-6), i.e. almost zero, so it begins as a neutral
    query token; the patch projection uses LeCun-normal (trunc-normal with std sqrt(1/fan_in)), as Google's
    original implementation does, because it is a Dense layer over the flattened patch.

    ``cpu_kernels``: vit_ms.kernels' CPU layers (True), MindSpore's (False), or decide from the device (None); the
    device decides ``flash_attention`` (Ascend). Both change speed, not results, and are not part of ``config``.
    """

    def __init__(self, image_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=768, depth=12,
                 num_heads=12, mlp_ratio=4.0, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0,
                 global_pool="token", representation_size=None, norm_eps=1e-6, gelu_approximate=False,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, cpu_kernels=None):
        super().__init__()
        for name, value in (("image_size", image_size), ("patch_size", patch_size), ("in_chans", in_chans),
                            ("embed_dim", embed_dim), ("depth", depth), ("num_heads", num_heads)):
            check_int(value, name)
        check_int(num_classes, "num_classes (0 = features only)", minimum=0)
        for name, value in (("drop_rate", drop_rate), ("attn_drop_rate", attn_drop_rate),
                            ("drop_path_rate", drop_path_rate)):
            check_rate(value, name)
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        if representation_size is not None:
            check_int(representation_size, "representation_size (or None)")
        # the constructor arguments, saved with trained checkpoints so the model can be rebuilt from the file
        self.config = dict(image_size=image_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
                           embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                           drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate,
                           global_pool=global_pool, representation_size=representation_size, norm_eps=norm_eps,
                           gelu_approximate=gelu_approximate, mean=tuple(mean), std=tuple(std))
        self.num_classes = num_classes
        self.embed_dim = self.num_features = embed_dim
        self.global_pool = global_pool
        self.norm_eps = norm_eps
        self.gelu_approximate = gelu_approximate
        # the input normalisation that goes with the weights (eval, predict and notebooks read it from here)
        self.mean, self.std = tuple(mean), tuple(std)
        self.cpu_kernels = kernels.use_cpu_kernels(cpu_kernels)
        layers = layer_set(self.cpu_kernels)

        self.patch_embed = PatchEmbed(image_size, patch_size, in_chans, embed_dim, layers=layers)
        self.image_size, self.patch_size, self.grid_size = image_size, patch_size, self.patch_embed.grid_size
        num_patches = self.patch_embed.num_patches
        self.cls_token = Parameter(initializer(Normal(1e-6), (1, 1, embed_dim), ms.float32), name="cls_token")
        self.pos_embed = Parameter(_trunc_normal((1, num_patches + 1, embed_dim), 0.02), name="pos_embed")
        self.pos_drop = nn.Dropout(p=drop_rate)
        rates = np.linspace(0, drop_path_rate, depth).tolist()  # stochastic depth rises linearly with depth
        self.blocks = nn.CellList([
            Block(embed_dim, num_heads, mlp_ratio, drop_rate, attn_drop_rate, rates[i], norm_eps, gelu_approximate,
                  layers=layers)
            for i in range(depth)])
        self.flash_attention = any(block.attn.flash_attention for block in self.blocks)
        self.norm = layers.LayerNorm((embed_dim,), epsilon=norm_eps)
        if representation_size:
            # the original pre-training head: Dense + tanh before the classifier
            self.pre_logits = nn.SequentialCell([_dense(layers, embed_dim, representation_size), nn.Tanh()])
            self.num_features = representation_size
        else:
            self.pre_logits = nn.Identity()
        self.head_drop = nn.Dropout(p=drop_rate)
        self.head = _dense(layers, self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        # the patch projection: LeCun-normal weight, zero bias
        proj = self.patch_embed.proj
        fan_in = proj.in_channels * proj.kernel_size[0] * proj.kernel_size[1]
        proj.weight.set_data(_trunc_normal(proj.weight.shape, math.sqrt(1.0 / fan_in)))
        proj.bias.set_data(initializer("zeros", proj.bias.shape))

    def no_weight_decay(self):
        """Names of parameters trained without weight decay: norms, biases, class token, position embedding."""
        return [p.name for p in self.trainable_params()
                if p.ndim <= 1 or p.name in ("cls_token", "pos_embed") or p.name.endswith((".gamma", ".beta"))]

    def embed(self, x):
        """Patch embedding + class token + position embedding: [B,C,H,W] -> [B,1+N,D]."""
        x = self.patch_embed(x)
        cls = ops.broadcast_to(self.cls_token.astype(x.dtype), (x.shape[0], 1, x.shape[2]))
        x = ops.concat((cls, x), axis=1)
        return self.pos_drop(x + self.pos_embed.astype(x.dtype))

    def forward_features(self, x, drop_path_noise=None):
        """Normalised tokens [B, 1+N, D] after the encoder and the final LayerNorm (drop_path_noise: [depth, 2, B])."""
        x = self.embed(x)
        for i, block in enumerate(self.blocks):
            x = block(x, None if drop_path_noise is None else drop_path_noise[i])
        return self.norm(x)

    def forward_head(self, x):
        x = x[:, 1:].mean(axis=1) if self.global_pool == "avg" else x[:, 0]
        x = self.pre_logits(x)
        return self.head(self.head_drop(x))

    def construct(self, x, drop_path_noise=None):
        return self.forward_head(self.forward_features(x, drop_path_noise))

    def attention_maps(self, x):
        """Every block's attention weights, a list of depth tensors [B, heads, T, T] (eval mode, PyNative).

        A separate pass so the normal forward pays nothing for it.
        """
        x = self.embed(x)
        maps = []
        for block in self.blocks:
            probs, _ = block.attn.attention_probs(block.norm1(x))
            maps.append(probs)
            x = block(x)
        return maps

    def set_numerics(self, norm_eps=None, gelu_approximate=None, mean=None, std=None):
        """Change the LayerNorm epsilon, the GELU form (True: tanh approximation, False: exact erf) and the input
        normalisation (mean/std) the model carries, e.g. to those that loaded weights were trained with; None leaves
        that one as it is. In graph mode, call it before the first call: a compiled graph keeps its numerics."""
        check_numerics(norm_eps, gelu_approximate, mean, std, channels=self.patch_embed.in_chans)
        for _, cell in self.cells_and_names():
            if norm_eps is not None and isinstance(cell, nn.LayerNorm):
                _set_epsilon(cell, float(norm_eps))
            if gelu_approximate is not None and isinstance(cell, nn.GELU):
                set_gelu_form(cell, gelu_approximate)
        changes = dict(norm_eps=norm_eps, gelu_approximate=gelu_approximate,
                       mean=None if mean is None else tuple(float(v) for v in mean),
                       std=None if std is None else tuple(float(v) for v in std))
        for attr, value in changes.items():
            if value is not None:
                setattr(self, attr, value)
                self.config[attr] = value


def _set_epsilon(norm, epsilon):
    """nn.LayerNorm keeps its epsilon in the primitive its constructor built, so a new epsilon needs a new one."""
    if hasattr(norm, "set_epsilon"):  # vit_ms.kernels.LayerNorm: its fused backward holds the epsilon too
        norm.set_epsilon(epsilon)
        return
    norm.epsilon = epsilon
    norm.layer_norm = ops.LayerNorm(begin_norm_axis=norm.begin_norm_axis, begin_params_axis=norm.begin_params_axis,
                                    epsilon=epsilon)


def count_params(cell, trainable=True):
    """Number of (trainable) parameters of a Cell."""
    params = cell.trainable_params() if trainable else cell.get_parameters()
    return int(sum(int(np.prod(p.shape)) for p in params))
