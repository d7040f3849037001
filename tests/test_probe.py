"""Figure 7's left and right panels as numbers: embedding filters (SVD) and mean attention distance, each checked
against NumPy written independently, against attention weights made by hand, and across the model's two paths."""
import math

import mindspore as ms
import numpy as np
import pytest

from numpy_vit import layer_norm, random_params, softmax, to_vit_ms
from vit_ms import (attention_distance, embedding_filters, mean_attention_distance, uniform_attention_distance)
from vit_ms.model import VisionTransformer

SMALL = dict(image_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=10)


def load(model, weights):
    params = {p.name: p for p in model.get_parameters()}
    assert set(params) == set(weights)
    for name, value in weights.items():
        params[name].set_data(ms.Tensor(value))
    return model


def distance_by_loops(weights, grid, patch):
    """Mean attention distance of one head's [1+N, 1+N] weights, written out pair by pair."""
    n = grid * grid
    total = 0.0
    for q in range(n):
        row = weights[1 + q, 1:] / weights[1 + q, 1:].sum()
        for k in range(n):
            total += row[k] * patch * math.dist(divmod(q, grid), divmod(k, grid))
    return total / n


# ---- embedding filters ----

def test_embedding_filters_equal_numpy_svd_up_to_sign():
    model = VisionTransformer(**SMALL)
    weight = model.patch_embed.proj.weight.asnumpy()                # [D, C, P, P]
    filters, singular = embedding_filters(model, n=10)
    assert filters.shape == (10, 8, 8, 3)
    _, s, vt = np.linalg.svd(weight.reshape(64, -1).astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(singular, s, rtol=1e-10)
    assert np.all(np.diff(singular) <= 0)                           # strongest first
    for k in range(10):
        component = filters[k].transpose(2, 0, 1).reshape(-1)       # back to the weight's C, P, P order
        assert min(np.abs(component - vt[k]).max(), np.abs(component + vt[k]).max()) < 1e-8


def test_a_filter_bank_built_from_known_components_gives_them_back():
    rng = np.random.default_rng(3)
    c, p, d, k = 3, 4, 20, 5
    components = np.linalg.qr(rng.standard_normal((c * p * p, k)))[0].T     # k orthonormal patch patterns
    strengths = np.array([9.0, 5.0, 3.0, 2.0, 1.0])
    mixing = np.linalg.qr(rng.standard_normal((d, k)))[0]                   # orthonormal columns
    weight = (mixing * strengths) @ components                              # [D, C*P*P], rank k
    filters, singular = embedding_filters(weight.reshape(d, c, p, p), n=k)
    np.testing.assert_allclose(singular[:k], strengths, rtol=1e-10)
    np.testing.assert_allclose(singular[k:], 0, atol=1e-10)
    for found, known in zip(filters, components):
        found = found.transpose(2, 0, 1).reshape(-1)
        np.testing.assert_allclose(np.abs(found @ known), 1.0, rtol=1e-10)  # the same pattern, sign free


def test_embedding_filters_reject_bad_input():
    with pytest.raises(ValueError, match=r"at most 48 components, asked for 49"):
        embedding_filters(np.zeros((64, 3, 4, 4)), n=49)
    with pytest.raises(ValueError, match=r"\[D, C, P, P\], got shape \(64, 48\)"):
        embedding_filters(np.zeros((64, 48)))


# ---- attention distance from weights made by hand ----

@pytest.mark.parametrize("grid, patch, expected", [(8, 8, 33.09), (14, 16, 116.49), (2, 10, 10 * (2 + math.sqrt(2)) / 4)])
def test_uniform_weights_give_exactly_the_uniform_distance(grid, patch, expected):
    n = grid * grid
    uniform = np.full((3, 1 + n, 1 + n), 1.0 / (1 + n))                     # class token column is dropped
    distances = mean_attention_distance(uniform, patch)
    assert distances.shape == (3,)
    np.testing.assert_allclose(distances, uniform_attention_distance(grid, patch), rtol=1e-12)
    assert uniform_attention_distance(grid, patch) == pytest.approx(expected, abs=0.01)
    assert distance_by_loops(uniform[0], grid, patch) == pytest.approx(distances[0], rel=1e-12)


def test_weights_only_on_the_four_grid_neighbours_give_exactly_the_patch_size():
    grid, patch = 5, 16
    weights = np.zeros((1 + grid * grid, 1 + grid * grid))
    weights[0, 0] = weights[1:, 0] = 0.3                                    # on the class token: dropped
    for q in range(grid * grid):
        i, j = divmod(q, grid)
        for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
            if 0 <= a < grid and 0 <= b < grid:
                weights[1 + q, 1 + a * grid + b] = 0.7 / 4                  # rows are renormalised over patches
    assert mean_attention_distance(weights[None, None], patch).item() == pytest.approx(patch, rel=1e-12)


def test_random_weights_equal_the_pair_by_pair_sum_and_grids_may_be_rectangular():
    rng = np.random.default_rng(0)
    weights = softmax(rng.standard_normal((2, 3, 17, 17)) * 3)
    np.testing.assert_allclose(mean_attention_distance(weights, 8),
                               [[distance_by_loops(w, 4, 8) for w in heads] for heads in weights], rtol=1e-12)
    local = np.zeros((1 + 6, 1 + 6))
    local[1:, 1:] = np.eye(6)                                               # each patch on itself: distance 0
    assert mean_attention_distance(local, 8, grid_size=(2, 3)) == 0.0
    assert uniform_attention_distance((1, 2), 10) == pytest.approx(5.0)


@pytest.mark.parametrize("weights, kwargs, match", [
    (np.zeros((4, 5)), {}, r"\[\.\.\., T, T\], got shape \(4, 5\)"),
    (np.full((7, 7), 1 / 7), {}, r"6 patch tokens are not a square grid"),
    (np.full((7, 7), 1 / 7), dict(grid_size=(2, 2)), r"2x2 = 4 patches, but the attention has 6"),
    (np.full((5, 5), -0.2), {}, r"softmax probabilities, not scores"),
])
def test_bad_weights_are_rejected(weights, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mean_attention_distance(weights, 8, **kwargs)


# ---- attention distance of a model ----

def numpy_attention(params, images, num_heads):
    """Every block's attention weights [B, heads, T, T], from an independent NumPy forward pass."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    kernel = p["embedding/kernel"]
    ps, (b, c, h, w) = kernel.shape[0], images.shape
    patches = images.reshape(b, c, h // ps, ps, w // ps, ps).transpose(0, 2, 4, 3, 5, 1)
    tokens = (np.einsum("bhwijc,ijcd->bhwd", patches, kernel) + p["embedding/bias"]).reshape(b, -1, kernel.shape[-1])
    x = np.concatenate([np.broadcast_to(p["cls"], (b, 1, tokens.shape[-1])), tokens], axis=1)
    x = x + p["Transformer/posembed_input/pos_embedding"]
    maps = []
    for i in range(SMALL["depth"]):
        blk = f"Transformer/encoderblock_{i}/"
        att = blk + "MultiHeadDotProductAttention_1/"
        y = layer_norm(x, p[blk + "LayerNorm_0/scale"], p[blk + "LayerNorm_0/bias"], 1e-6)
        q, k, v = (np.einsum("btd,dhk->bhtk", y, p[att + n + "/kernel"]) + p[att + n + "/bias"][None, :, None, :]
                   for n in ("query", "key", "value"))
        weights = softmax(np.einsum("bhtk,bhsk->bhts", q, k) / math.sqrt(q.shape[-1]))
        maps.append(weights)
        x = x + np.einsum("bthk,hkd->btd", np.einsum("bhts,bhsk->bthk", weights, v), p[att + "out/kernel"])
        x = x + p[att + "out/bias"]
        y = layer_norm(x, p[blk + "LayerNorm_2/scale"], p[blk + "LayerNorm_2/bias"], 1e-6)
        hidden = y @ p[blk + "MlpBlock_3/Dense_0/kernel"] + p[blk + "MlpBlock_3/Dense_0/bias"]
        hidden = 0.5 * hidden * (1 + np.vectorize(math.erf)(hidden / math.sqrt(2)))
        x = x + hidden @ p[blk + "MlpBlock_3/Dense_1/kernel"] + p[blk + "MlpBlock_3/Dense_1/bias"]
    return maps


@pytest.fixture(scope="module")
def small_weights():
    params = random_params(np.random.default_rng(5), image_size=32, patch_size=8, dim=64, depth=2, num_heads=4,
                           num_classes=10, scale=0.3)
    images = np.random.default_rng(6).standard_normal((5, 3, 32, 32)).astype(np.float32)
    return params, images


def test_attention_distance_of_a_model_equals_numpy(small_weights):
    params, images = small_weights
    model = load(VisionTransformer(**SMALL, cpu_kernels=False), to_vit_ms(params))
    model.set_train(True)
    distances = attention_distance(model, images, batch_size=2)            # batches of 2, 2 and 1
    assert distances.shape == (2, 4)
    expected = np.stack([mean_attention_distance(m, 8).mean(axis=0) for m in numpy_attention(params, images, 4)])
    np.testing.assert_allclose(distances, expected, rtol=1e-4)
    assert model.training                                                   # the mode it was in is restored
    uniform = uniform_attention_distance(4, 8)
    assert np.all(distances > 0) and np.all(distances < 2 * uniform)


def test_cpu_kernel_and_mindspore_paths_give_the_same_distances(small_weights, needs_cpu_kernels):
    params, images = small_weights
    fast = load(VisionTransformer(**SMALL, cpu_kernels=True), to_vit_ms(params))
    native = load(VisionTransformer(**SMALL, cpu_kernels=False), to_vit_ms(params))
    assert fast.blocks[0].attn.fused is not None and native.blocks[0].attn.fused is None
    np.testing.assert_allclose(attention_distance(fast, images), attention_distance(native, images), rtol=1e-5)


def test_attention_distance_rejects_a_bad_batch():
    model = VisionTransformer(**SMALL, cpu_kernels=False)
    with pytest.raises(ValueError, match=r"non-empty image batch \[B, C, H, W\], got shape \(3, 32, 32\)"):
        attention_distance(model, np.zeros((3, 32, 32), np.float32))
