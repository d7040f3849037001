"""The Vision Transformer (ViT) as MindSpore Cells, one Cell per box of the paper's diagram.

    image [B,C,H,W] -> PatchEmbed -> [B,N,D] -> prepend class token -> [B,1+N,D] -> + position embedding
      -> Block x depth (LayerNorm -> Attention -> DropPath -> +, LayerNorm -> Mlp -> DropPath -> +)
      -> LayerNorm -> class token (or mean of patch tokens) -> [pre-logits Dense+tanh] -> head -> logits

Parameter names follow timm/mindcv (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.{i}.attn.qkv``,
...), so published weights map onto this model one to one.
"""
import math

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Normal, initializer

from . import native


def _trunc_normal(shape, std, a=-2.0, b=2.0):
    """float32 Tensor from normal(0, std) truncated to [a, b] (absolute bounds, like MindSpore's TruncatedNormal and
    timm's trunc_normal_). NumPy draws it several times faster than MindSpore's initializer (ViT-L/16: ~12 s -> ~4 s);
    the seed comes from NumPy's global state, so ms.set_seed / np.random.seed make it reproducible as before."""
    rng = np.random.default_rng(np.random.randint(1 << 62))
    x = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
    outside = (x < a) | (x > b)
    while outside.any():  # redraw the few values outside the bounds: the distribution stays exactly truncated
        x[outside] = rng.standard_normal(int(outside.sum()), dtype=np.float32) * np.float32(std)
        outside = (x < a) | (x > b)
    return Tensor(x)


# ---- CPU kernels -------------------------------------------------------------------------------------------------
# MindSpore 2.10's CPU backend has slow spots that an exact rewrite avoids (measured on a 2-core AVX-512 Xeon, ViT
# shapes): Conv2D with a 16x16 stride-16 kernel (ViT-B/16 patch embedding, batch 8: 2.4 s, against 6 ms as a matmul),
# BiasAddGrad (~10x slower than the column sum it computes), StridedSlice (~5x slower than unstack), the erf-GELU
# kernel (~1.3x slower and more memory than the formula written with erf), and MatMul in the a @ b and a.T @ b forms
# once b has 3072 or more columns (2-3x slower; the a @ b.T form runs at ~180 GFLOP/s per core). The LayerNorm
# backward pass and the exact GELU have no fast MindSpore formulation on CPU (a backward pass written with MindSpore
# ops was no faster than its LayerNormGrad kernel); they run as small C++ kernels (vit_ms/csrc, built by
# vit_ms.native), in ViT-B/16 at batch 8: LayerNorm backward 1.5 ms against 23 ms, GELU forward + backward
# ([8, 197, 3072]) 23 ms against 60 ms. Each Cell reads the device when it is built; Ascend and GPU keep MindSpore's
# fused kernels.

def _on_cpu():
    return ms.get_context("device_target") == "CPU"


_MATMUL = ops.MatMul()                       # a @ b
_MATMUL_NT = ops.MatMul(transpose_b=True)    # a @ b.T
_MATMUL_TN = ops.MatMul(transpose_a=True)    # a.T @ b
_BATCH_MATMUL_NT = ops.BatchMatMul(transpose_b=True)
_SUM = ops.ReduceSum()
_CONCAT_COLUMNS = ops.Concat(axis=1)
_WIDE = 2048                                 # a @ b and a.T @ b are fast while b has at most this many columns


def _column_blocks(width):
    """The fewest equal column blocks of at most _WIDE columns that ``width`` columns divide into."""
    return next(count for count in range(-(-width // _WIDE), width + 1) if width % count == 0)


class _Linear(nn.Cell):
    """y = x @ weight.T + bias for rows x [N, in], with a hand-written backward pass:
    dx = dy @ weight and dweight = dy.T @ x, each computed in column blocks of at most _WIDE (ViT-B's fc2 has 3072
    input columns), and dbias = dy summed over rows."""

    def __init__(self, in_features):
        super().__init__()
        self.blocks = _column_blocks(in_features)
        self.split_columns = ops.Split(axis=1, output_num=self.blocks)

    def construct(self, x, weight, bias):
        return ops.bias_add(_MATMUL_NT(x, weight), bias)

    def bprop(self, x, weight, bias, out, dout):
        if self.blocks == 1:
            return _MATMUL(dout, weight), _MATMUL_TN(dout, x), _SUM(dout, 0)
        dx = _CONCAT_COLUMNS(tuple(_MATMUL(dout, w) for w in self.split_columns(weight)))
        dweight = _CONCAT_COLUMNS(tuple(_MATMUL_TN(dout, xb) for xb in self.split_columns(x)))
        return dx, dweight, _SUM(dout, 0)


class Dense(nn.Dense):
    """nn.Dense: same parameters, same result; on CPU computed on 2-D rows by ``_Linear``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cpu_kernels = _on_cpu() and self.has_bias and not self.activation_flag
        if self.cpu_kernels:
            self.linear = _Linear(self.in_channels)

    def construct(self, x):
        if not self.cpu_kernels:
            return super().construct(x)
        # weights cast here, outside _Linear: under mixed precision the Cast's own gradient then returns the
        # weight gradients in the parameters' float32 (inside _Linear they would stay float16)
        y = self.linear(x.reshape(-1, self.in_channels), self.weight.astype(x.dtype), self.bias.astype(x.dtype))
        return y.reshape(x.shape[:-1] + (self.out_channels,))


class _GeluFunction(nn.Cell):
    """Exact GELU with vit_ms's C++ forward and backward kernels (float32)."""

    def __init__(self, forward, backward):
        super().__init__()
        self.gelu = forward
        self.gelu_grad = backward

    def construct(self, x):
        return self.gelu(x)                               # (y, Phi(x))

    def bprop(self, x, out, dout):
        return (self.gelu_grad(x, out[1], dout[0]),)


class GELU(nn.GELU):
    """nn.GELU (``approximate`` True: tanh form, False: exact erf form). On CPU the exact form is x * Phi(x) computed
    by vit_ms's C++ kernels (float32), or, where they cannot be built, written with MindSpore's erf kernel (~1.3x
    faster than the GELU kernel); all three are within 5e-8 of float64. The tanh form keeps the GELU kernel: the
    CPU tanh kernel is off by up to 1e-4 for |x| in [3, 7]."""

    def __init__(self, approximate=True):
        super().__init__(approximate=approximate)
        self.cpu_kernels = _on_cpu()
        kernels = native.gelu() if self.cpu_kernels else None
        self.fused = None if kernels is None else _GeluFunction(*kernels)

    def construct(self, x):
        if not self.cpu_kernels or self.approximate == "tanh":
            return super().construct(x)
        if self.fused is not None and x.dtype == ms.float32:
            return self.fused(x)[0]
        return x * (0.5 + 0.5 * ops.erf(x * 0.7071067811865476))


class _LayerNormFunction(nn.Cell):
    """LayerNorm over the last axis with MindSpore's forward kernel and vit_ms's C++ backward (float32)."""

    def __init__(self, epsilon, backward):
        super().__init__()
        self.epsilon = epsilon
        self.layer_norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=epsilon)
        self.layer_norm_grad = backward

    def construct(self, x, gamma, beta):
        return self.layer_norm(x, gamma, beta)            # (y, mean, variance)

    def bprop(self, x, gamma, beta, out, dout):
        _, mean, variance = out
        return self.layer_norm_grad(x, dout[0], mean, ops.rsqrt(variance + self.epsilon), gamma)


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the last axis: same parameters, same result. On CPU, float32, its backward pass is the
    fused C++ kernel of ``vit_ms.native`` (MindSpore's CPU LayerNormGrad is ~7x slower at ViT sizes), when that
    kernel can be built; otherwise MindSpore's kernels."""

    def __init__(self, dim, epsilon):
        super().__init__((dim,), epsilon=epsilon)
        backward = native.layer_norm_grad() if _on_cpu() else None
        self.fused = None if backward is None else _LayerNormFunction(epsilon, backward)

    def set_epsilon(self, epsilon):
        """Change epsilon after construction (before the first call: a compiled graph keeps the old one)."""
        self.epsilon = float(epsilon)
        self.layer_norm = ops.LayerNorm(begin_norm_axis=self.begin_norm_axis, begin_params_axis=self.begin_params_axis,
                                        epsilon=self.epsilon)
        if self.fused is not None:
            self.fused = _LayerNormFunction(self.epsilon, self.fused.layer_norm_grad)

    def construct(self, x):
        if self.fused is None or x.dtype != ms.float32:
            return super().construct(x)
        return self.fused(x, self.gamma, self.beta)[0]


def _dense(in_dim, out_dim):
    """Dense with timm's initialisation: trunc-normal(0.02) weight, zero bias (drawn once, at construction)."""
    return Dense(in_dim, out_dim, weight_init=_trunc_normal((out_dim, in_dim), 0.02), bias_init="zeros",
                 has_bias=True)


def _check_rate(name, value):
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


class PatchEmbed(nn.Cell):
    """Cut the image into patch_size x patch_size patches and project each to a D-vector.

    A convolution with kernel = stride = patch_size is exactly "flatten each patch, then one Linear".
    """

    def __init__(self, image_size=224, patch_size=16, in_chans=3, embed_dim=768):
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(f"image_size must be divisible by patch_size, got image_size={image_size}, "
                             f"patch_size={patch_size}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.grid_size = (image_size // patch_size, image_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size,
                              pad_mode="valid", has_bias=True)
        self.cpu_kernels = _on_cpu()
        if self.cpu_kernels:
            self.linear = _Linear(in_chans * patch_size * patch_size)

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
        if self.cpu_kernels:
            # the same product as the convolution, as one matmul over flattened patches: MindSpore's CPU Conv2D
            # with a 16x16 stride-16 kernel is hundreds of times slower than this
            b, c, h, w = x.shape
            p, d = self.patch_size, self.proj.out_channels
            patches = x.reshape(b, c, h // p, p, w // p, p).transpose(0, 2, 4, 1, 3, 5).reshape(-1, c * p * p)
            x = self.linear(patches, self.proj.weight.reshape(d, c * p * p).astype(x.dtype),
                            self.proj.bias.astype(x.dtype))  # cast outside _Linear, as in Dense
            return x.reshape(b, -1, d)                     # [B, N, D], patches in row-major grid order
        x = self.proj(x)                                   # [B, D, gh, gw]
        x = x.reshape(x.shape[0], x.shape[1], -1)          # [B, D, N]
        return x.transpose(0, 2, 1)                        # [B, N, D]


class Attention(nn.Cell):
    """Multi-head self-attention with one fused qkv projection."""

    def __init__(self, dim, num_heads=12, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"embed_dim must be divisible by num_heads, got embed_dim={dim}, num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = _dense(dim, dim * 3)
        self.attn_drop = nn.Dropout(p=attn_drop)
        self.proj = _dense(dim, dim)
        self.proj_drop = nn.Dropout(p=proj_drop)
        # Ascend: MindSpore's fused flash-attention kernel (float16/bfloat16 only, i.e. under mixed precision;
        # head size a multiple of 16; no attention dropout). CPU and GPU never take this path.
        self.flash_attention = (ms.get_context("device_target") == "Ascend" and attn_drop == 0.0
                                and self.head_dim % 16 == 0)

    def heads(self, x):
        """Queries, keys and values, each [B, heads, T, head_dim]."""
        b, t, _ = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).transpose(2, 0, 3, 1, 4)
        return ops.unstack(qkv, 0)                         # indexing qkv[0], qkv[1], qkv[2] is ~5x slower on CPU

    def softmax_scores(self, q, k):
        scores = _BATCH_MATMUL_NT(q * self.scale, k)       # q @ k.T without materialising k.T
        # softmax in float32 even under mixed precision: fp16 exp overflows on large scores
        return ops.softmax(scores.astype(ms.float32), axis=-1).astype(q.dtype)

    def attention_probs(self, x):
        """Softmax attention weights [B, heads, T, T] and values [B, heads, T, head_dim]."""
        q, k, v = self.heads(x)
        return self.softmax_scores(q, k), v

    def construct(self, x):
        b, t, d = x.shape
        q, k, v = self.heads(x)
        if self.flash_attention and q.dtype != ms.float32:
            out = ops.flash_attention_score(q, k, v, self.num_heads, scalar_value=self.scale, input_layout="BNSD")
        else:
            out = ops.matmul(self.attn_drop(self.softmax_scores(q, k)), v)  # [B, heads, T, head_dim]
        out = out.transpose(0, 2, 1, 3).reshape(b, t, d)   # heads merged back: [B, T, D]
        return self.proj_drop(self.proj(out))


class Mlp(nn.Cell):
    """Dense(D, 4D) -> GELU -> Dropout -> Dense(4D, D) -> Dropout."""

    def __init__(self, dim, hidden_dim, drop=0.0, gelu_approximate=False):
        super().__init__()
        self.fc1 = _dense(dim, hidden_dim)
        self.act = GELU(approximate=gelu_approximate)
        self.drop1 = nn.Dropout(p=drop)
        self.fc2 = _dense(hidden_dim, dim)
        self.drop2 = nn.Dropout(p=drop)

    def construct(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class DropPath(nn.Cell):
    """Stochastic depth: in training, zero the whole residual branch for a random subset of samples.

    Kept samples are scaled by 1/keep so the expected output is unchanged; identity in eval.
    """

    def __init__(self, drop_prob=0.0):
        super().__init__()
        _check_rate("drop_path_rate", drop_prob)
        self.drop_prob = float(drop_prob)
        # Each instance draws from its own seeded uniform kernel. nn.Dropout's CPU kernel was not reproducible under
        # a fixed seed while the data pipeline ran beside training (measured: 2 of 3 pairs of runs differed).
        # The seeds come from NumPy's global state, like the weights, so np.random.seed fixes them (drawn only when
        # needed, so a model without drop-path is initialised exactly as before).
        self.uniform = None
        if self.drop_prob > 0.0:
            seed, seed2 = (int(s) for s in np.random.randint(1, 2 ** 31 - 1, size=2))
            self.uniform = ops.UniformReal(seed=seed, seed2=seed2)

    def construct(self, x):
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = ops.floor(self.uniform(shape) + keep)       # 1 with probability keep, else 0 (one per sample)
        return x * (mask / keep).astype(x.dtype)


class Block(nn.Cell):
    """Encoder block (pre-norm): x + DropPath(Attention(LN(x))), then x + DropPath(Mlp(LN(x)))."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, drop=0.0, attn_drop=0.0, drop_path=0.0,
                 norm_eps=1e-6, gelu_approximate=False):
        super().__init__()
        self.norm1 = LayerNorm(dim, norm_eps)
        self.attn = Attention(dim, num_heads, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = LayerNorm(dim, norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop, gelu_approximate=gelu_approximate)
        self.drop_path2 = DropPath(drop_path)

    def construct(self, x):
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x


class VisionTransformer(nn.Cell):
    """ViT. The constructor arguments are the whole configuration (see ``vit_ms.factory`` for the named sizes).

    Initialisation follows timm: trunc-normal(0.02) for the position embedding and every Dense weight (head
    included), zero biases; the class token starts at normal(1e-6), i.e. almost zero, so it begins as a neutral
    query token; the patch projection uses LeCun-normal (trunc-normal with std sqrt(1/fan_in)), as Google's
    original implementation does, because it is a Dense layer over the flattened patch.
    """

    def __init__(self, image_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=768, depth=12,
                 num_heads=12, mlp_ratio=4.0, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0,
                 global_pool="token", representation_size=None, norm_eps=1e-6, gelu_approximate=False,
                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        super().__init__()
        for name, value in (("image_size", image_size), ("patch_size", patch_size), ("in_chans", in_chans),
                            ("embed_dim", embed_dim), ("depth", depth), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0 (0 = features only), got {num_classes!r}")
        for name, value in (("drop_rate", drop_rate), ("attn_drop_rate", attn_drop_rate),
                            ("drop_path_rate", drop_path_rate)):
            _check_rate(name, value)
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim must be divisible by num_heads, got embed_dim={embed_dim}, "
                             f"num_heads={num_heads}")
        if representation_size is not None and (not isinstance(representation_size, int)
                                                or representation_size <= 0):
            raise ValueError(f"representation_size must be a positive integer or None, got {representation_size!r}")
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

        self.patch_embed = PatchEmbed(image_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = Parameter(initializer(Normal(1e-6), (1, 1, embed_dim), ms.float32), name="cls_token")
        self.pos_embed = Parameter(_trunc_normal((1, num_patches + 1, embed_dim), 0.02), name="pos_embed")
        self.pos_drop = nn.Dropout(p=drop_rate)
        rates = np.linspace(0, drop_path_rate, depth).tolist()  # stochastic depth rises linearly with depth
        self.blocks = nn.CellList([
            Block(embed_dim, num_heads, mlp_ratio, drop_rate, attn_drop_rate, rates[i], norm_eps, gelu_approximate)
            for i in range(depth)])
        self.norm = LayerNorm(embed_dim, norm_eps)
        if representation_size:
            # the original pre-training head: Dense + tanh before the classifier
            self.pre_logits = nn.SequentialCell([_dense(embed_dim, representation_size), nn.Tanh()])
            self.num_features = representation_size
        else:
            self.pre_logits = nn.Identity()
        self.head_drop = nn.Dropout(p=drop_rate)
        self.head = _dense(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    @property
    def image_size(self):
        return self.patch_embed.image_size

    @property
    def patch_size(self):
        return self.patch_embed.patch_size

    @property
    def grid_size(self):
        return self.patch_embed.grid_size

    def _init_weights(self):
        # every Dense layer already has trunc-normal(0.02) weights and zero biases from _dense
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

    def forward_features(self, x):
        """Normalised tokens [B, 1+N, D] after the encoder and the final LayerNorm."""
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_head(self, x):
        x = x[:, 1:].mean(axis=1) if self.global_pool == "avg" else x[:, 0]
        x = self.pre_logits(x)
        return self.head(self.head_drop(x))

    def construct(self, x):
        return self.forward_head(self.forward_features(x))

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


def count_params(cell, trainable=True):
    """Number of (trainable) parameters of a Cell."""
    params = cell.trainable_params() if trainable else cell.get_parameters()
    return int(sum(int(np.prod(p.shape)) for p in params))
