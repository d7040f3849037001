"""CPU versions of nn.Dense, nn.LayerNorm, nn.GELU and the patch-embedding nn.Conv2d: the same parameters and the same
results as the MindSpore layer they subclass, computed with the kernels that are fast on MindSpore's CPU backend; and
the attention of every head in one C++ kernel.

Why each one exists, with the measured figures: docs/performance.md.
"""
import mindspore as ms
from mindspore import nn, ops

from . import native

_MATMUL = ops.MatMul()                       # a @ b
_MATMUL_NT = ops.MatMul(transpose_b=True)    # a @ b.T
_MATMUL_TN = ops.MatMul(transpose_a=True)    # a.T @ b
_CONCAT_COLUMNS = ops.Concat(axis=1)
_WIDE = 2048                                 # a @ b and a.T @ b are fast while b has at most this many columns


def _column_blocks(width):
    """The fewest equal column blocks of at most _WIDE columns that ``width`` columns divide into."""
    return next(count for count in range(-(-width // _WIDE), width + 1) if width % count == 0)


def _column_sums(x):
    """x summed over its rows, as ones [1, N] @ x: MindSpore's CPU ReduceSum over axis 0 (and its BiasAddGrad) is
    several times slower than this product."""
    return _MATMUL(ops.ones((1, x.shape[0]), x.dtype), x).reshape(-1)


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
            return _MATMUL(dout, weight), _MATMUL_TN(dout, x), _column_sums(dout)
        dx = _CONCAT_COLUMNS(tuple(_MATMUL(dout, w) for w in self.split_columns(weight)))
        dweight = _CONCAT_COLUMNS(tuple(_MATMUL_TN(dout, xb) for xb in self.split_columns(x)))
        return dx, dweight, _column_sums(dout)


class Dense(nn.Dense):
    """nn.Dense computed on 2-D rows by ``_Linear`` (layers with a bias and no activation, as in a ViT)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.linear = _Linear(self.in_channels) if self.has_bias and not self.activation_flag else None

    def construct(self, x):
        if self.linear is None:
            return super().construct(x)
        # weights cast here, outside _Linear: under mixed precision the Cast's own gradient then returns the
        # weight gradients in the parameters' float32 (inside _Linear they would stay float16)
        y = self.linear(x.reshape(-1, self.in_channels), self.weight.astype(x.dtype), self.bias.astype(x.dtype))
        return y.reshape(x.shape[:-1] + (self.out_channels,))


class PatchConv2d(nn.Conv2d):
    """nn.Conv2d with kernel = stride (the patch embedding) computed as one matmul over flattened patches: the same
    product, without MindSpore's CPU Conv2D, which is hundreds of times slower for this kernel."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.kernel_size != self.stride or self.pad_mode != "valid" or not self.has_bias or self.group != 1:
            raise ValueError(f"PatchConv2d computes a patch projection: kernel_size = stride, pad_mode='valid', "
                             f"has_bias=True, group=1; got kernel_size={self.kernel_size}, stride={self.stride}, "
                             f"pad_mode={self.pad_mode!r}, has_bias={self.has_bias}, group={self.group}")
        kh, kw = self.kernel_size
        self.linear = _Linear(self.in_channels * kh * kw)

    def construct(self, x):
        b, c, h, w = x.shape
        (kh, kw), d = self.kernel_size, self.out_channels
        gh, gw = h // kh, w // kw
        patches = x.reshape(b, c, gh, kh, gw, kw).transpose(0, 2, 4, 1, 3, 5).reshape(-1, c * kh * kw)
        y = self.linear(patches, self.weight.reshape(d, c * kh * kw).astype(x.dtype),
                        self.bias.astype(x.dtype))        # cast outside _Linear, as in Dense
        return y.reshape(b, gh, gw, d).transpose(0, 3, 1, 2)  # [B, D, gh, gw], as the convolution gives


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
    """nn.GELU (``approximate`` True: tanh form, False: exact erf form). The exact form is x * Phi(x) computed by
    vit_ms's C++ kernels (float32), or, where they cannot be built, written with MindSpore's erf kernel (faster than
    its GELU kernel); Phi(x) within 8e-8 of float64. The tanh form keeps MindSpore's GELU kernel (its CPU tanh kernel
    is off by up to 1e-4 for |x| in [3, 7])."""

    def __init__(self, approximate=True):
        super().__init__(approximate=approximate)
        kernels = native.gelu()   # built even for the tanh form, so that set_numerics can switch it to exact
        self.fused = None if kernels is None else _GeluFunction(*kernels)

    def construct(self, x):
        if self.approximate == "tanh":
            return super().construct(x)
        if self.fused is not None and x.dtype == ms.float32:
            return self.fused(x)[0]
        return x * (0.5 + 0.5 * ops.erf(x * 0.7071067811865476))


class _LayerNormFunction(nn.Cell):
    """LayerNorm over the last axis with vit_ms's C++ forward and backward kernels (float32)."""

    def __init__(self, epsilon, kernels):
        super().__init__()
        self.kernels = kernels
        self.epsilon = ms.Tensor([epsilon], ms.float32)
        self.layer_norm, self.layer_norm_grad = kernels

    def construct(self, x, gamma, beta):
        return self.layer_norm(x, gamma, beta, self.epsilon)   # (y, mean, 1 / sqrt(variance + epsilon))

    def bprop(self, x, gamma, beta, out, dout):
        _, mean, rstd = out
        return self.layer_norm_grad(x, dout[0], mean, rstd, gamma)


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the last axis computed, in float32, by vit_ms's C++ kernels (when they can be built;
    otherwise, and in float16, by MindSpore's kernels)."""

    def __init__(self, normalized_shape, epsilon=1e-7):
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        super().__init__(tuple(normalized_shape), epsilon=epsilon)
        kernels = native.layer_norm()
        self.fused = None if kernels is None else _LayerNormFunction(epsilon, kernels)

    def set_epsilon(self, epsilon):
        """Change epsilon after construction (before the first call: a compiled graph keeps the old one)."""
        self.epsilon = float(epsilon)
        self.layer_norm = ops.LayerNorm(begin_norm_axis=self.begin_norm_axis, begin_params_axis=self.begin_params_axis,
                                        epsilon=self.epsilon)
        if self.fused is not None:
            self.fused = _LayerNormFunction(self.epsilon, self.fused.kernels)

    def construct(self, x):
        if self.fused is None or x.dtype != ms.float32:
            return super().construct(x)
        return self.fused(x, self.gamma, self.beta)[0]


class _AttentionFunction(nn.Cell):
    """The attention kernels as one differentiable function: qkv -> (out, probs); probs is kept for the backward."""

    def __init__(self, forward, backward):
        super().__init__()
        self.attention = forward
        self.attention_grad = backward

    def construct(self, qkv):
        return self.attention(qkv)

    def bprop(self, qkv, out, dout):
        return (self.attention_grad(qkv, out[1], dout[0]),)


class FusedAttention(nn.Cell):
    """softmax(q @ k.T / sqrt(head_dim)) @ v in every head, float32, from the qkv layer's output reshaped to
    [B, T, 3, heads, head_dim] to the heads' outputs [B, T, heads, head_dim]: what ``vit_ms.model.Attention`` computes
    with transposes, BatchMatMul and Softmax, in vit_ms's C++ kernels (no attention dropout)."""

    def __init__(self, kernels):
        super().__init__()
        self.function = _AttentionFunction(*kernels)

    def construct(self, qkv):
        return self.function(qkv)[0]


def fused_attention():
    """A FusedAttention, or None where its kernels cannot be built (MindSpore's kernels are used then)."""
    kernels = native.attention()
    return None if kernels is None else FusedAttention(kernels)
