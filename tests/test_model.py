"""The model: shapes along ViT-B/16, equality with mindcv 0.3.0 and with a NumPy forward pass, DropPath, attention,
initialisation, and the errors bad input gets (in PyNative and under ms.jit)."""
import math

import numpy as np
import pytest

import mindspore as ms
from mindcv.models.vit import VisionTransformer as MindcvViT
from mindcv.models.vit import vit_b_16_224

from numpy_vit import forward as numpy_forward
from numpy_vit import from_vit_ms
from vit_ms.factory import create_model
from vit_ms.kernels.layers import _WIDE, GELU, Dense, LayerNorm, PatchConv2d, _column_blocks, fused_attention
from vit_ms.model import Attention, DropPath, VisionTransformer, _trunc_normal

SMALL = dict(image_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=10)
MINDCV_NUMERICS = dict(norm_eps=1e-7, gelu_approximate=True)  # mindcv: nn.LayerNorm's 1e-7, nn.GELU's tanh form


def images(batch, size, seed=1, channels=3):
    return ms.Tensor(np.random.default_rng(seed).standard_normal((batch, channels, size, size), dtype=np.float32))


def randomize(model, rng, scale=0.02):
    """Perturb every parameter (biases, LayerNorms and class token included) so that each one shows in the output."""
    weights = {}
    for p in model.get_parameters():
        weights[p.name] = p.asnumpy() + scale * rng.standard_normal(p.shape, dtype=np.float32)
        p.set_data(ms.Tensor(weights[p.name]))
    return weights


def load_by_name(model, weights):
    params = {p.name: p for p in model.get_parameters()}
    assert set(params) == set(weights), f"parameter names differ: {sorted(set(params) ^ set(weights))}"
    for name, value in weights.items():
        assert params[name].shape == value.shape, name
        params[name].set_data(ms.Tensor(value))


def relative_error(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def call(cell, x, mode):
    """Run ``cell`` in PyNative, or compiled to a static graph with ms.jit (the graph-mode path of MindSpore 2.x)."""
    # ms.jit(cell) rather than a jitted closure: MindSpore keeps closures (and the cells they hold) until exit
    return (ms.jit(cell) if mode == "jit" else cell)(x)


# ---- ViT-B/16 at 224: shapes and equality with mindcv ----

@pytest.fixture(scope="module")
def b16():
    """ViT-B/16 with mindcv's numerics, every parameter perturbed; its weights; and images [2, 3, 224, 224]."""
    np.random.seed(0)
    model = create_model("vit_b_16", num_classes=1000, **MINDCV_NUMERICS)
    model.set_train(False)
    weights = randomize(model, np.random.default_rng(0))
    return model, weights, images(2, 224)


def test_b16_shapes_along_the_forward_pass(b16):
    model, _, x = b16
    assert (model.image_size, model.patch_size, model.grid_size) == (224, 16, (14, 14))
    assert model.patch_embed(x).shape == (2, 196, 768)                 # 14 x 14 patches, each a 768-vector
    tokens = model.embed(x)
    assert tokens.shape == (2, 197, 768)                               # class token first
    cls_row = model.cls_token.asnumpy()[0, 0] + model.pos_embed.asnumpy()[0, 0]
    np.testing.assert_allclose(tokens.asnumpy()[:, 0], np.stack([cls_row, cls_row]), rtol=0, atol=1e-6)
    block = model.blocks[0]
    assert block.mlp.fc1(block.norm2(tokens)).shape == (2, 197, 3072)  # the MLP widens 4x
    assert model.forward_features(x).shape == (2, 197, 768)


def test_b16_attention_maps_are_row_stochastic(b16):
    model, _, x = b16
    maps = model.attention_maps(x)
    assert len(maps) == 12
    for probs in maps:
        assert probs.shape == (2, 12, 197, 197)
        probs = probs.asnumpy()
        assert probs.min() >= 0
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def mindcv_b16(b16):
    """mindcv 0.3.0's vit_b_16_224 holding the same weights as ``b16``, copied by name."""
    reference = vit_b_16_224(num_classes=1000, weight_init=False)  # its own init would be overwritten: skip it
    reference.set_train(False)
    load_by_name(reference, b16[1])
    return reference


@pytest.mark.parametrize("mode", ["pynative", "jit"])
def test_b16_logits_equal_mindcv_vit_b_16_224(b16, mindcv_b16, mode):
    model, _, x = b16
    logits = call(model, x, mode).asnumpy()
    assert logits.shape == (2, 1000)
    expected = call(mindcv_b16, x, mode).asnumpy()
    assert relative_error(logits, expected) <= 1e-5
    assert (logits.argmax(-1) == expected.argmax(-1)).all()


@pytest.mark.parametrize("mode", ["pynative", "jit"])
@pytest.mark.parametrize("global_pool", ["token", "avg"])
def test_small_logits_equal_mindcv(mode, global_pool):
    model = VisionTransformer(global_pool=global_pool, **SMALL, **MINDCV_NUMERICS)
    model.set_train(False)
    weights = randomize(model, np.random.default_rng(2), scale=0.2)
    # fc_norm=False: mindcv then pools after the final LayerNorm, as the original ViT (and vit_ms) do
    reference = MindcvViT(image_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=10,
                          global_pool=global_pool, fc_norm=False, weight_init=False)
    reference.set_train(False)
    load_by_name(reference, weights)
    x = images(2, 32)
    assert relative_error(call(model, x, mode).asnumpy(), call(reference, x, mode).asnumpy()) <= 1e-5


# ---- an independent NumPy forward pass ----

@pytest.mark.parametrize("config", [
    dict(),                                                 # vit_ms defaults: LayerNorm eps 1e-6, exact GELU
    dict(global_pool="avg", representation_size=24),
    dict(norm_eps=1e-7, gelu_approximate=True, num_classes=0),
], ids=["defaults", "avg-prelogits", "mindcv-numerics-features"])
def test_logits_equal_numpy_reference(config):
    config = dict(SMALL, **config)
    model = VisionTransformer(**config)
    model.set_train(False)
    weights = randomize(model, np.random.default_rng(3), scale=0.2)
    x = images(2, 32)
    numerics = dict(norm_eps=config.get("norm_eps", 1e-6), gelu_approximate=config.get("gelu_approximate", False))
    expected = numpy_forward(from_vit_ms(weights, config["num_heads"]), x.asnumpy(),
                             global_pool=config.get("global_pool", "token"), **numerics)
    out = model(x).asnumpy()
    assert out.shape == expected.shape == (2, config["num_classes"] or 64)
    assert relative_error(out, expected) <= 1e-5


def test_numerics_change_the_output():
    # the reference comparisons above would be blind if LayerNorm eps and the GELU form made no difference
    exact, mindcv_like = VisionTransformer(**SMALL), VisionTransformer(**SMALL, **MINDCV_NUMERICS)
    load_by_name(mindcv_like, randomize(exact, np.random.default_rng(3), scale=0.2))
    exact.set_train(False)
    mindcv_like.set_train(False)
    x = images(2, 32)
    assert relative_error(exact(x).asnumpy(), mindcv_like(x).asnumpy()) > 1e-5


# ---- attention ----

def test_attention_equals_manual_qkv():
    dim, heads, b, t = 32, 4, 2, 5
    attn = Attention(dim, heads)
    attn.set_train(False)
    w = randomize(attn, np.random.default_rng(4), scale=0.3)
    x = np.random.default_rng(5).standard_normal((b, t, dim), dtype=np.float32)

    qkv = x @ w["qkv.weight"].T + w["qkv.bias"]                                # [B, T, 3D]: q | k | v
    q, k, v = (qkv[..., i * dim:(i + 1) * dim].reshape(b, t, heads, dim // heads).transpose(0, 2, 1, 3)
               for i in range(3))                                              # each [B, heads, T, hd]
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dim // heads)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, dim) @ w["proj.weight"].T + w["proj.bias"]

    np.testing.assert_allclose(attn(ms.Tensor(x)).asnumpy(), out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(attn.attention_probs(ms.Tensor(x))[0].asnumpy(), probs, rtol=1e-5, atol=1e-6)


# ---- DropPath (stochastic depth) ----

def test_drop_path_is_identity_in_eval():
    drop = DropPath(0.5)
    drop.set_train(False)
    x = np.random.default_rng(6).standard_normal((8, 5, 4), dtype=np.float32)
    np.testing.assert_array_equal(drop(ms.Tensor(x)).asnumpy(), x)


def test_drop_path_drops_whole_samples_and_keeps_the_mean():
    rate, n = 0.3, 4000
    drop = DropPath(rate)
    drop.set_train(True)
    x = 1.0 + np.random.default_rng(7).random((n, 6, 4), dtype=np.float32)
    y = drop(ms.Tensor(x)).asnumpy()
    dropped = np.all(y == 0, axis=(1, 2))
    np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - rate), rtol=1e-6)  # kept samples: x / keep, whole
    assert abs(dropped.mean() - rate) < 0.05          # binomial std ~0.007
    ratio = y.sum(axis=(1, 2)) / x.sum(axis=(1, 2))   # 0 or 1/keep per sample; expectation 1
    assert abs(ratio.mean() - 1.0) < 0.05             # std of the mean ~0.01


def test_drop_path_with_given_noise_keeps_the_samples_whose_number_reaches_the_drop_rate():
    drop = DropPath(0.25)                             # keep 0.75: kept where noise + 0.75 >= 1
    drop.set_train(True)
    x = 1.0 + np.random.default_rng(8).random((4, 3, 2), dtype=np.float32)
    noise = np.array([0.1, 0.2499, 0.25, 0.9], np.float32)
    for _ in range(2):                                # the same numbers, the same masks: no state in between
        y = drop(ms.Tensor(x), ms.Tensor(noise)).asnumpy()
        np.testing.assert_array_equal(y[:2], 0)
        np.testing.assert_allclose(y[2:], x[2:] / np.float32(0.75), rtol=1e-6)


def test_model_with_drop_path_noise_equals_the_blocks_applied_by_hand():
    model = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5,
                              drop_path_rate=0.5, cpu_kernels=False)
    model.set_train(True)
    x = ms.Tensor(np.random.default_rng(9).standard_normal((3, 3, 32, 32), dtype=np.float32))
    noise = np.random.default_rng(10).random((2, 2, 3), dtype=np.float32)
    tokens = model.embed(x)
    for block, (n1, n2) in zip(model.blocks, noise):
        keep = 1 - block.drop_path1.drop_prob, 1 - block.drop_path2.drop_prob
        mask1 = ms.Tensor((np.floor(n1 + keep[0]) / keep[0]).reshape(3, 1, 1).astype(np.float32))
        mask2 = ms.Tensor((np.floor(n2 + keep[1]) / keep[1]).reshape(3, 1, 1).astype(np.float32))
        tokens = tokens + block.attn(block.norm1(tokens)) * mask1
        tokens = tokens + block.mlp(block.norm2(tokens)) * mask2
    expected = model.forward_head(model.norm(tokens)).asnumpy()
    np.testing.assert_allclose(model(x, ms.Tensor(noise)).asnumpy(), expected, rtol=1e-5, atol=1e-6)


def test_drop_path_rate_rises_linearly_across_blocks():
    model = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=5, num_heads=2, drop_path_rate=0.4)
    for rates in ([b.drop_path1.drop_prob for b in model.blocks], [b.drop_path2.drop_prob for b in model.blocks]):
        np.testing.assert_allclose(rates, [0.0, 0.1, 0.2, 0.3, 0.4])


# ---- initialisation and weight decay ----

def test_initialisation_follows_timm():
    model = VisionTransformer(image_size=32, patch_size=8, embed_dim=128, depth=1, num_heads=4, num_classes=100)
    p = {q.name: q.asnumpy() for q in model.get_parameters()}
    for name in ("blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight", "head.weight", "pos_embed"):
        assert abs(p[name].std() - 0.02) < 0.002 and abs(p[name].mean()) < 0.002, name
    for name in ("blocks.0.attn.qkv.bias", "blocks.0.mlp.fc2.bias", "head.bias", "patch_embed.proj.bias"):
        assert not p[name].any(), name
    assert abs(p["patch_embed.proj.weight"].std() - math.sqrt(1 / (3 * 8 * 8))) < 0.01  # LeCun normal
    assert np.abs(p["cls_token"]).max() < 1e-4
    np.random.seed(1)
    again = VisionTransformer(image_size=32, patch_size=8, embed_dim=128, depth=1, num_heads=4, num_classes=100)
    np.random.seed(1)
    same = VisionTransformer(image_size=32, patch_size=8, embed_dim=128, depth=1, num_heads=4, num_classes=100)
    np.testing.assert_array_equal(again.head.weight.asnumpy(), same.head.weight.asnumpy())  # seedable


def test_trunc_normal_redraws_to_the_truncated_distribution():
    std, bound = 1.5, 2.0
    x = _trunc_normal((400, 500), std, -bound, bound).asnumpy()
    assert x.dtype == np.float32 and np.abs(x).max() <= bound
    k = bound / std  # variance of a normal truncated at +-k sigma: sigma^2 (1 - 2 k phi(k) / (2 Phi(k) - 1))
    phi, mass = math.exp(-k * k / 2) / math.sqrt(2 * math.pi), math.erf(k / math.sqrt(2))
    assert abs(x.std() - std * math.sqrt(1 - 2 * k * phi / mass)) < 0.01
    assert (np.abs(x) > 0.99 * bound).mean() < 0.01  # redrawn, not clipped onto the bounds


def test_no_weight_decay_lists_norms_biases_and_embeddings():
    model = VisionTransformer(**SMALL)
    names = set(model.no_weight_decay())
    assert {"cls_token", "pos_embed", "norm.gamma", "norm.beta", "blocks.1.norm2.gamma", "head.bias",
            "blocks.0.attn.qkv.bias", "patch_embed.proj.bias"} <= names
    assert not names & {"head.weight", "blocks.0.attn.qkv.weight", "blocks.1.mlp.fc1.weight",
                        "patch_embed.proj.weight"}


# ---- bad input ----

@pytest.fixture(scope="module")
def small_model():
    model = VisionTransformer(**SMALL)
    model.set_train(False)
    return model


@pytest.mark.parametrize("mode", ["pynative", "jit"])
@pytest.mark.parametrize("shape, message", [
    ((2, 3, 32), r"expected a 4-D image batch \[B, C, H, W\], got a 3-D tensor"),
    ((2, 1, 32, 32), r"expected 3 input channels .* got 1"),
    ((2, 3, 48, 48), r"built for 32x32 images, got 48x48; create the model with image_size=48 .*resampled"),
    ((2, 3, 30, 36), r"divisible by the patch size 8, got 30x36"),
], ids=["3-D", "channels", "image-size", "not-divisible"])
def test_bad_input_raises_clear_error(small_model, shape, message, mode):
    x = ms.Tensor(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=message):
        call(small_model, x, mode).asnumpy()


@pytest.mark.parametrize("overrides, message", [
    (dict(embed_dim=100, num_heads=12), r"embed_dim must be divisible by num_heads, got embed_dim=100, num_heads=12"),
    (dict(image_size=30), r"image_size must be divisible by patch_size, got image_size=30, patch_size=8"),
    (dict(drop_rate=1.0), r"drop_rate must be a number in \[0, 1\), got 1.0"),
    (dict(attn_drop_rate=-0.1), r"attn_drop_rate must be a number in \[0, 1\), got -0.1"),
    (dict(drop_path_rate=1.5), r"drop_path_rate must be a number in \[0, 1\), got 1.5"),
    (dict(global_pool="max"), r"global_pool must be 'token' or 'avg', got 'max'"),
    (dict(depth=0), r"depth must be a positive integer, got 0"),
])
def test_bad_configuration_raises_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        VisionTransformer(**dict(SMALL, **overrides))


def test_bad_cell_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"embed_dim must be divisible by num_heads, got embed_dim=30, num_heads=4"):
        Attention(30, 4)
    with pytest.raises(ValueError, match=r"drop_path_rate must be a number in \[0, 1\), got 1"):
        DropPath(1)


# ---- CPU kernels: the rewrites that avoid MindSpore's slow CPU kernels equal the native kernels ----

def loss_and_gradients(model, x, seed=8):
    weights = ms.Tensor(np.random.default_rng(seed).standard_normal((x.shape[0], model.num_classes or
                                                                      model.num_features), dtype=np.float32))
    params = model.trainable_params()

    def loss_fn(images):
        return (model(images) * weights).sum()

    loss, grads = ms.jit(ms.value_and_grad(loss_fn, None, params))(x)
    return float(loss.asnumpy()), {p.name: g.asnumpy() for p, g in zip(params, grads)}


@pytest.mark.skipif(ms.get_context("device_target") != "CPU", reason="the rewrites are CPU-only")
@pytest.mark.parametrize("config", [
    dict(),
    # tanh GELU, avg pooling, pre-logits; mlp_ratio 40 gives fc2 2560 input columns: its backward runs in 2 blocks
    dict(norm_eps=1e-7, gelu_approximate=True, global_pool="avg", representation_size=24, mlp_ratio=40.0),
], ids=["defaults", "wide-fc2"])
def test_cpu_kernels_equal_native_kernels_with_gradients(config, needs_cpu_kernels):
    config = dict(SMALL, **config)
    # the reference: MindSpore's own layers and kernels (the path Ascend and GPU take)
    fast, native = VisionTransformer(**config), VisionTransformer(**config, cpu_kernels=False)
    assert isinstance(fast.blocks[0].mlp.fc2, Dense) and fast.blocks[0].mlp.fc2.linear is not None
    assert isinstance(fast.blocks[0].mlp.act, GELU) and isinstance(fast.patch_embed.proj, PatchConv2d)
    assert not any(isinstance(cell, (Dense, GELU, LayerNorm, PatchConv2d)) for _, cell in native.cells_and_names())
    assert fast.blocks[0].norm1.fused is not None and fast.norm.fused is not None, "vit_ms.native did not build"
    assert fast.blocks[0].mlp.act.fused is not None          # used for the exact GELU only
    assert fast.blocks[0].attn.fused is not None and native.blocks[0].attn.fused is None
    load_by_name(native, randomize(fast, np.random.default_rng(9), scale=0.2))
    x = images(4, 32)
    for model in (fast, native):
        model.set_train(True)  # no dropout in this configuration: training mode is deterministic
    loss, grads = loss_and_gradients(fast, x)
    expected_loss, expected = loss_and_gradients(native, x)
    assert abs(loss - expected_loss) <= 1e-5 * abs(expected_loss)
    assert grads.keys() == expected.keys()
    for name, grad in grads.items():
        assert relative_error(grad, expected[name]) <= 1e-5, name
        assert np.abs(grad).max() > 0, name  # every parameter gets a gradient
    for model in (fast, native):
        model.set_train(False)
    logits, expected_logits = fast(x).asnumpy(), native(x).asnumpy()
    assert relative_error(logits, expected_logits) <= 1e-5


@pytest.mark.skipif(ms.get_context("device_target") != "CPU", reason="the fused kernel is CPU-only")
@pytest.mark.parametrize("shape, eps, built_with", [((2, 5, 48), 1e-6, 1e-6), ((7, 768), 1e-7, 1e-7),
                                                     ((3, 197, 768), 1e-6, 1e-6), ((2, 5, 48), 0.5, 1e-6)],
                         ids=["small", "2-D", "vit-b", "epsilon-changed-after-construction"])
def test_layer_norm_fused_kernels_equal_mindspore_and_float64(shape, eps, built_with, needs_cpu_kernels):
    from mindspore import nn

    rng = np.random.default_rng(3)
    fused, reference = LayerNorm(shape[-1], built_with), nn.LayerNorm((shape[-1],), epsilon=eps)
    if eps != built_with:
        fused.set_epsilon(eps)                             # what set_numerics does when weights need another eps
    assert fused.fused is not None, "vit_ms.native did not build"
    for cell in (fused, reference):
        cell.gamma.set_data(ms.Tensor(rng.uniform(0.5, 1.5, shape[-1]).astype(np.float32)))
        cell.beta.set_data(ms.Tensor(rng.standard_normal(shape[-1]).astype(np.float32)))
        rng = np.random.default_rng(3)                       # the same gamma and beta in both
    x = ms.Tensor((rng.standard_normal(shape) * 3 + 1).astype(np.float32))   # off-centre rows, as in a ViT
    weights = ms.Tensor(rng.standard_normal(shape).astype(np.float32))

    def outputs_and_gradients(cell):
        def loss_fn(inputs):
            return (cell(inputs) * weights).sum()

        _, grads = ms.jit(ms.value_and_grad(loss_fn, 0, cell.trainable_params()))(x)
        return cell(x).asnumpy(), grads[0].asnumpy(), [g.asnumpy() for g in grads[1]]

    results = [outputs_and_gradients(cell) for cell in (fused, reference)]
    (y, dx, (dgamma, dbeta)), (y_ref, dx_ref, (dgamma_ref, dbeta_ref)) = results
    x64, gamma64 = x.asnumpy().astype(np.float64), fused.gamma.asnumpy().astype(np.float64)
    y64 = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + eps) * gamma64 \
        + fused.beta.asnumpy().astype(np.float64)
    assert relative_error(y, y64) <= 1e-6 and relative_error(y, y_ref) <= 1e-6
    assert relative_error(dx, dx_ref) <= 1e-5
    assert relative_error(dgamma, dgamma_ref) <= 1e-5
    assert relative_error(dbeta, dbeta_ref) <= 1e-5


@pytest.mark.skipif(ms.get_context("device_target") != "CPU", reason="the fused kernel is CPU-only")
@pytest.mark.parametrize("batch, tokens, heads, dim", [(2, 197, 12, 64), (3, 5, 2, 8), (1, 1, 1, 4)],
                         ids=["vit-b", "small", "one-token"])
def test_fused_attention_and_its_gradient_equal_float64(batch, tokens, heads, dim, needs_cpu_kernels):
    rng = np.random.default_rng(5)
    qkv = (rng.standard_normal((batch, tokens, 3, heads, dim)) * 2).astype(np.float32)
    weights = rng.standard_normal((batch, tokens, heads, dim)).astype(np.float32)
    attention = fused_attention()
    assert attention is not None, "vit_ms.native did not build the attention kernel"

    def loss_fn(x):
        return (attention(x) * ms.Tensor(weights)).sum()

    out = attention(ms.Tensor(qkv)).asnumpy()
    grad = ms.jit(ms.grad(loss_fn))(ms.Tensor(qkv)).asnumpy()
    # float64 reference, written out: per head, p = softmax(q k.T / sqrt(d)), out = p v, and the chain rule
    q, k, v = qkv.astype(np.float64).transpose(2, 0, 3, 1, 4)            # each [B, H, T, d]
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dim)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    dout = weights.astype(np.float64).transpose(0, 2, 1, 3)
    dp = dout @ v.transpose(0, 1, 3, 2)
    dscores = p * (dp - (dp * p).sum(-1, keepdims=True)) / math.sqrt(dim)
    expected_grad = np.stack([dscores @ k, dscores.transpose(0, 1, 3, 2) @ q, p.transpose(0, 1, 3, 2) @ dout])
    # float32 sums over up to 197 tokens: a few float32 roundings off (MindSpore's own path too)
    assert relative_error(out, (p @ v).transpose(0, 2, 1, 3)) <= 3e-6
    assert relative_error(grad, expected_grad.transpose(1, 3, 0, 2, 4)) <= 3e-6


@pytest.mark.parametrize("width, blocks", [(192, 1), (2048, 1), (3072, 2), (4096, 2), (5120, 4)])
def test_column_blocks_are_equal_and_at_most_wide(width, blocks):
    assert _column_blocks(width) == blocks
    assert width % blocks == 0 and width // blocks <= _WIDE


@pytest.mark.parametrize("fused", [True, False], ids=["native-kernels", "erf-formula"])
def test_exact_gelu_and_its_gradient_equal_float64(fused, request):
    if fused:
        request.getfixturevalue("needs_cpu_kernels")
    x = np.linspace(-12, 12, 200001).astype(np.float32)
    x64 = x.astype(np.float64)
    phi = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x64])        # Phi(x), accurate in both tails
    density = np.exp(-x64 ** 2 / 2) / math.sqrt(2 * math.pi)
    gelu = GELU(approximate=False)
    if fused and ms.get_context("device_target") == "CPU":
        assert gelu.fused is not None, "vit_ms.native did not build"
    if not fused:
        gelu.fused = None                                   # the formula used where the C++ kernels cannot be built

    def total(v):
        return gelu(v).sum()

    value = gelu(ms.Tensor(x)).asnumpy()
    grad = ms.jit(ms.grad(total))(ms.Tensor(x)).asnumpy()
    ulp = np.spacing(np.abs(x)).astype(np.float64) + 1e-30
    assert (np.abs(value - x64 * phi) <= 2 * ulp).all()  # within 2 float32 steps of |x|
    # the gradient goes through MindSpore's CPU exp (relative error ~5e-6); its GELU kernel's gradient is off by 8e-7
    assert np.abs(grad - (phi + x64 * density)).max() <= 1e-6


def test_gradients_keep_the_parameter_dtype_under_o2_mixed_precision():
    """Under O2 the CPU matmul path computes in float16; its weight gradients must still arrive in float32."""
    model = VisionTransformer(**SMALL)
    network = ms.amp.auto_mixed_precision(model, "O2")
    network.set_train(True)
    params = model.trainable_params()

    def loss_fn(x):
        return network(x).astype(ms.float32).sum()

    _, grads = ms.jit(ms.value_and_grad(loss_fn, None, params))(images(2, 32))
    assert {p.name: g.dtype for p, g in zip(params, grads)} == {p.name: p.dtype for p in params}


def test_summary_walks_vit_b16_stage_by_stage():
    import vit_ms

    model = create_model("vit_b_16")
    result = vit_ms.summary(model, (2, 3, 224, 224))
    shapes = {name: shape for name, shape, _ in result.rows}
    assert shapes["input image"] == (2, 3, 224, 224) and shapes["patch embedding"] == (2, 196, 768)
    assert shapes["+ class token"] == shapes["+ position embedding"] == shapes["encoder block 11"] == (2, 197, 768)
    assert shapes["class token"] == (2, 768) and shapes["classification head"] == (2, 1000)
    assert [name for name, _, _ in result.rows].count("encoder block 0") == 1 and len(result.rows) == 19
    assert result.total_params == 86_567_656 == sum(params for _, _, params in result.rows)
    assert "86,567,656" in str(result) and "encoder block 11" in str(result)
    with pytest.raises(ValueError, match=r"input_size must be \[B, 3, 224, 224\] for this model, got \[1, 3, 32, 32\]"):
        vit_ms.summary(model, (1, 3, 32, 32))
