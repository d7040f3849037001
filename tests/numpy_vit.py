"""An independent NumPy (float64) forward pass of ViT, the reference the MindSpore model is checked against.

Weights are given the way Google's original JAX/Flax implementation stores them (the ``.npz`` names and shapes:
flax kernels [in, out], attention kernels with a separate heads axis [D, heads, head_dim]), so the reference needs no
re-arranging of its own. ``from_vit_ms`` / ``to_vit_ms`` translate to and from vit_ms (timm) names and layouts.
"""
import math

import numpy as np

_ERF = np.frompyfunc(math.erf, 1, 1)


def gelu(x, approximate=False):
    """GELU: exact x * Phi(x) via erf, or the tanh approximation."""
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0)).astype(np.float64))


def layer_norm(x, scale, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def depth_of(params):
    return len({k.split("/")[1] for k in params if k.startswith("Transformer/encoderblock_")})


def forward(params, images, norm_eps=1e-6, gelu_approximate=False, global_pool="token"):
    """Logits [B, classes] (or features [B, D] when there is no head) for images [B, C, H, W]."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = np.asarray(images, dtype=np.float64)
    kernel = p["embedding/kernel"]                           # [p, p, C, D]
    ps = kernel.shape[0]
    b, c, h, w = x.shape
    patches = x.reshape(b, c, h // ps, ps, w // ps, ps).transpose(0, 2, 4, 3, 5, 1)  # [B, gh, gw, p, p, C]
    tokens = np.einsum("bhwijc,ijcd->bhwd", patches, kernel) + p["embedding/bias"]
    tokens = tokens.reshape(b, -1, kernel.shape[-1])        # row-major patch order
    cls = np.broadcast_to(p["cls"], (b, 1, tokens.shape[-1]))
    x = np.concatenate([cls, tokens], axis=1) + p["Transformer/posembed_input/pos_embedding"]
    for i in range(depth_of(p)):
        blk = f"Transformer/encoderblock_{i}/"
        att = blk + "MultiHeadDotProductAttention_1/"
        y = layer_norm(x, p[blk + "LayerNorm_0/scale"], p[blk + "LayerNorm_0/bias"], norm_eps)
        q, k, v = (np.einsum("btd,dhk->bhtk", y, p[att + n + "/kernel"]) + p[att + n + "/bias"][None, :, None, :]
                   for n in ("query", "key", "value"))
        weights = softmax(np.einsum("bhtk,bhsk->bhts", q, k) / math.sqrt(q.shape[-1]))
        out = np.einsum("bhts,bhsk->bthk", weights, v)
        x = x + np.einsum("bthk,hkd->btd", out, p[att + "out/kernel"]) + p[att + "out/bias"]
        y = layer_norm(x, p[blk + "LayerNorm_2/scale"], p[blk + "LayerNorm_2/bias"], norm_eps)
        hidden = gelu(y @ p[blk + "MlpBlock_3/Dense_0/kernel"] + p[blk + "MlpBlock_3/Dense_0/bias"], gelu_approximate)
        x = x + hidden @ p[blk + "MlpBlock_3/Dense_1/kernel"] + p[blk + "MlpBlock_3/Dense_1/bias"]
    x = layer_norm(x, p["Transformer/encoder_norm/scale"], p["Transformer/encoder_norm/bias"], norm_eps)
    x = x[:, 1:].mean(axis=1) if global_pool == "avg" else x[:, 0]
    if "pre_logits/kernel" in p:
        x = np.tanh(x @ p["pre_logits/kernel"] + p["pre_logits/bias"])
    if "head/kernel" in p:
        x = x @ p["head/kernel"] + p["head/bias"]
    return x


def random_params(rng, image_size=32, patch_size=8, in_chans=3, dim=64, depth=2, num_heads=4, mlp_dim=None,
                  num_classes=10, representation_size=None, scale=0.2):
    """Random float32 weights in Google's layout; norms near 1 and biases non-zero so every tensor matters."""
    mlp_dim = mlp_dim or 4 * dim
    hd, tokens = dim // num_heads, (image_size // patch_size) ** 2 + 1

    def r(*shape, loc=0.0):
        return (loc + scale * rng.standard_normal(shape)).astype(np.float32)

    p = {"embedding/kernel": r(patch_size, patch_size, in_chans, dim), "embedding/bias": r(dim),
         "cls": r(1, 1, dim), "Transformer/posembed_input/pos_embedding": r(1, tokens, dim),
         "Transformer/encoder_norm/scale": r(dim, loc=1.0), "Transformer/encoder_norm/bias": r(dim)}
    for i in range(depth):
        blk = f"Transformer/encoderblock_{i}/"
        att = blk + "MultiHeadDotProductAttention_1/"
        for n in ("LayerNorm_0", "LayerNorm_2"):
            p[blk + n + "/scale"], p[blk + n + "/bias"] = r(dim, loc=1.0), r(dim)
        for n in ("query", "key", "value"):
            p[att + n + "/kernel"], p[att + n + "/bias"] = r(dim, num_heads, hd), r(num_heads, hd)
        p[att + "out/kernel"], p[att + "out/bias"] = r(num_heads, hd, dim), r(dim)
        p[blk + "MlpBlock_3/Dense_0/kernel"], p[blk + "MlpBlock_3/Dense_0/bias"] = r(dim, mlp_dim), r(mlp_dim)
        p[blk + "MlpBlock_3/Dense_1/kernel"], p[blk + "MlpBlock_3/Dense_1/bias"] = r(mlp_dim, dim), r(dim)
    width = dim
    if representation_size:
        p["pre_logits/kernel"], p["pre_logits/bias"] = r(dim, representation_size), r(representation_size)
        width = representation_size
    if num_classes:
        p["head/kernel"], p["head/bias"] = r(width, num_classes), r(num_classes)
    return p


def to_vit_ms(params):
    """Google-layout weights -> vit_ms (timm) names and layouts: Dense weights [out, in], conv [D, C, p, p],
    one fused qkv projection whose output rows are [q heads..., k heads..., v heads...]."""
    out = {"patch_embed.proj.weight": params["embedding/kernel"].transpose(3, 2, 0, 1),
           "patch_embed.proj.bias": params["embedding/bias"], "cls_token": params["cls"],
           "pos_embed": params["Transformer/posembed_input/pos_embedding"],
           "norm.gamma": params["Transformer/encoder_norm/scale"], "norm.beta": params["Transformer/encoder_norm/bias"]}
    for i in range(depth_of(params)):
        blk, dst = f"Transformer/encoderblock_{i}/", f"blocks.{i}."
        att = blk + "MultiHeadDotProductAttention_1/"
        dim = params[att + "query/kernel"].shape[0]
        for src, norm in (("LayerNorm_0", "norm1"), ("LayerNorm_2", "norm2")):
            out[f"{dst}{norm}.gamma"] = params[blk + src + "/scale"]
            out[f"{dst}{norm}.beta"] = params[blk + src + "/bias"]
        out[dst + "attn.qkv.weight"] = np.concatenate(
            [params[att + n + "/kernel"].reshape(dim, -1).T for n in ("query", "key", "value")])
        out[dst + "attn.qkv.bias"] = np.concatenate(
            [params[att + n + "/bias"].reshape(-1) for n in ("query", "key", "value")])
        out[dst + "attn.proj.weight"] = params[att + "out/kernel"].reshape(-1, dim).T
        out[dst + "attn.proj.bias"] = params[att + "out/bias"]
        for j, fc in ((0, "fc1"), (1, "fc2")):
            out[dst + f"mlp.{fc}.weight"] = params[blk + f"MlpBlock_3/Dense_{j}/kernel"].T
            out[dst + f"mlp.{fc}.bias"] = params[blk + f"MlpBlock_3/Dense_{j}/bias"]
    for src, dst in (("pre_logits", "pre_logits.0"), ("head", "head")):
        if src + "/kernel" in params:
            out[dst + ".weight"], out[dst + ".bias"] = params[src + "/kernel"].T, params[src + "/bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def from_vit_ms(weights, num_heads):
    """vit_ms (timm) names and layouts -> Google layout (the inverse of ``to_vit_ms``); ``weights`` may hold NumPy
    arrays or MindSpore tensors (e.g. ``{p.name: p.asnumpy() for p in model.get_parameters()}``)."""
    w = {k: np.asarray(v.asnumpy() if hasattr(v, "asnumpy") else v, dtype=np.float32) for k, v in weights.items()}
    dim = w["cls_token"].shape[-1]
    hd = dim // num_heads
    p = {"embedding/kernel": w["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
         "embedding/bias": w["patch_embed.proj.bias"], "cls": w["cls_token"],
         "Transformer/posembed_input/pos_embedding": w["pos_embed"],
         "Transformer/encoder_norm/scale": w["norm.gamma"], "Transformer/encoder_norm/bias": w["norm.beta"]}
    depth = len({k.split(".")[1] for k in w if k.startswith("blocks.")})
    for i in range(depth):
        src, blk = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        att = blk + "MultiHeadDotProductAttention_1/"
        for dst, norm in (("LayerNorm_0", "norm1"), ("LayerNorm_2", "norm2")):
            p[blk + dst + "/scale"], p[blk + dst + "/bias"] = w[f"{src}{norm}.gamma"], w[f"{src}{norm}.beta"]
        qkv_w, qkv_b = w[src + "attn.qkv.weight"], w[src + "attn.qkv.bias"]
        for j, n in enumerate(("query", "key", "value")):
            p[att + n + "/kernel"] = qkv_w[j * dim:(j + 1) * dim].T.reshape(dim, num_heads, hd)
            p[att + n + "/bias"] = qkv_b[j * dim:(j + 1) * dim].reshape(num_heads, hd)
        p[att + "out/kernel"] = w[src + "attn.proj.weight"].T.reshape(num_heads, hd, dim)
        p[att + "out/bias"] = w[src + "attn.proj.bias"]
        for j, fc in ((0, "fc1"), (1, "fc2")):
            p[blk + f"MlpBlock_3/Dense_{j}/kernel"] = w[src + f"mlp.{fc}.weight"].T
            p[blk + f"MlpBlock_3/Dense_{j}/bias"] = w[src + f"mlp.{fc}.bias"]
    for src, dst in (("pre_logits.0", "pre_logits"), ("head", "head")):
        if src + ".weight" in w:
            p[dst + "/kernel"], p[dst + "/bias"] = w[src + ".weight"].T, w[src + ".bias"]
    return {k: np.ascontiguousarray(v) for k, v in p.items()}
