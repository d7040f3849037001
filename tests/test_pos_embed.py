"""Position-embedding tools: similarity maps on hand-built embeddings, bicubic resampling, 2-D sin-cos."""
import mindspore as ms
import numpy as np
import pytest

from vit_ms.model import VisionTransformer
from vit_ms.pos_embed import pos_embed_similarity, position_structure, resample_pos_embed, sincos_2d_pos_embed


def orthonormal_rows(n, dim, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, n)))
    return q.T  # [n, dim], rows orthonormal


def with_class_token(patches, seed=1):
    cls = np.random.default_rng(seed).standard_normal((1, patches.shape[-1]))
    return np.concatenate([cls, patches])[None].astype(np.float32)  # [1, 1+N, D]


# ---- similarity ----

def test_orthogonal_embeddings_give_the_identity():
    patches = orthonormal_rows(16, 24)
    for pe in (with_class_token(patches), with_class_token(patches)[0], patches):  # [1,1+N,D], [1+N,D], [N,D]
        sim = pos_embed_similarity(pe)
        assert sim.shape == (4, 4, 4, 4)
        np.testing.assert_allclose(sim.reshape(16, 16), np.eye(16), atol=1e-6)


def test_equal_scaled_and_opposite_rows():
    patches = orthonormal_rows(9, 16) * np.arange(1, 10)[:, None]  # norms differ: cosine ignores them
    patches[5] = 3.0 * patches[1]        # patch (1, 2) points the same way as patch (0, 1)
    patches[7] = -patches[3]             # patch (2, 1) is the opposite of patch (1, 0)
    sim = pos_embed_similarity(patches)
    assert sim[1, 2, 0, 1] == pytest.approx(1.0) and sim[0, 1, 1, 2] == pytest.approx(1.0)
    assert sim[2, 1, 1, 0] == pytest.approx(-1.0)
    assert sim[2, 2, 0, 0] == pytest.approx(0.0, abs=1e-9)


def test_similarity_of_a_random_embedding_is_a_cosine_matrix():
    pe = np.random.default_rng(2).standard_normal((1, 1 + 25, 8))
    sim = pos_embed_similarity(pe).reshape(25, 25)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-12)
    np.testing.assert_allclose(sim, sim.T, atol=1e-12)
    assert np.abs(sim).max() <= 1.0 + 1e-12
    a, b = pe[0, 1 + 7], pe[0, 1 + 19]   # patches (1, 2) and (3, 4) of the 5 x 5 grid
    assert sim[7, 19] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_similarity_of_a_model_uses_its_grid_and_drops_the_class_token():
    model = VisionTransformer(image_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2)
    sim = pos_embed_similarity(model)
    assert sim.shape == (4, 4, 4, 4)
    np.testing.assert_allclose(sim, pos_embed_similarity(model.pos_embed.asnumpy()), atol=1e-12)


@pytest.mark.parametrize("shape, message", [
    ((2, 17, 8), r"expected a position embedding \[1, 1\+N, D\], got shape \(2, 17, 8\)"),
    ((17,), r"expected a position embedding of shape \[1, 1\+N, D\]"),
    ((1, 7, 8), r"cannot infer a square patch grid from 7 position embeddings"),
])
def test_similarity_rejects_bad_shapes(shape, message):
    with pytest.raises(ValueError, match=message):
        pos_embed_similarity(np.ones(shape))


# ---- resampling ----

def smooth_field(rows, cols):
    """A smooth, non-symmetric 4-channel function of (row, col) positions -> [len(rows) * len(cols), 4]."""
    r, c = np.meshgrid(rows, cols, indexing="ij")
    channels = [np.sin(0.3 * r), np.cos(0.2 * c), np.sin(0.15 * r + 0.25 * c), 0.05 * r - 0.02 * c]
    return np.stack(channels, axis=-1).reshape(-1, 4)


def centres(old, new):
    """Where the centres of ``new`` cells fall on an ``old``-cell grid (the align_corners=False convention)."""
    return (np.arange(new) + 0.5) * old / new - 0.5


def test_resampling_interpolates_the_grid_and_keeps_the_class_token():
    pe = with_class_token(smooth_field(np.arange(14), np.arange(14)))
    out = resample_pos_embed(pe, (24, 20))   # rows and columns differ: a swapped axis would show
    assert out.dtype == np.float32 and out.shape == (1, 1 + 24 * 20, 4)
    np.testing.assert_array_equal(out[0, 0], pe[0, 0])
    expected = smooth_field(centres(14, 24), centres(14, 20)).reshape(24, 20, 4)
    err = np.abs(out[0, 1:].reshape(24, 20, 4) - expected)
    assert err[2:-2, 2:-2].max() < 2e-3     # bicubic is accurate inside; the border extrapolates
    assert err.max() < 0.1


def test_resampling_there_and_back_is_close_to_identity():
    pe = with_class_token(smooth_field(np.arange(14), np.arange(14)))
    back = resample_pos_embed(resample_pos_embed(pe, 24), 14)
    assert back.shape == pe.shape
    np.testing.assert_array_equal(back[0, 0], pe[0, 0])
    assert np.abs(back - pe).max() < 0.03


def test_resampling_sincos_there_and_back():
    pe = sincos_2d_pos_embed(64, 14)
    pe[0, 0] = 0.5                            # a non-zero class token, to see it kept
    back = resample_pos_embed(resample_pos_embed(pe, 24), 14)
    np.testing.assert_array_equal(back[0, 0], pe[0, 0])
    assert np.abs(back - pe).mean() < 0.005 and np.abs(back - pe).max() < 0.1


def test_resampling_to_the_same_grid_changes_nothing():
    pe = np.random.default_rng(3).standard_normal((1, 1 + 16, 8))
    np.testing.assert_array_equal(resample_pos_embed(pe, 4), pe.astype(np.float32))


@pytest.mark.parametrize("shape, message", [
    ((17, 8), r"expected a position embedding \[1, T, D\], got shape \(17, 8\)"),
    ((1, 1 + 15, 8), r"\(15 tokens\) is not a square grid"),
])
def test_resampling_rejects_bad_shapes(shape, message):
    with pytest.raises(ValueError, match=message):
        resample_pos_embed(np.zeros(shape), 6)


# ---- 2-D sin-cos ----

def test_sincos_layout():
    pe = sincos_2d_pos_embed(32, (3, 5))
    assert pe.shape == (1, 1 + 15, 32) and pe.dtype == np.float32
    assert not pe[0, 0].any()                                    # class token: zeros
    assert sincos_2d_pos_embed(32, (3, 5), class_token=False).shape == (1, 15, 32)
    grid = pe[0, 1:].reshape(3, 5, 32)
    np.testing.assert_array_equal(grid[:, :, :16], np.repeat(grid[:, :1, :16], 5, axis=1))  # first half: row only
    np.testing.assert_array_equal(grid[:, :, 16:], np.repeat(grid[:1, :, 16:], 3, axis=0))  # second half: column
    norms = np.linalg.norm(grid, axis=-1)
    np.testing.assert_allclose(norms, np.sqrt(16), rtol=1e-6)   # sin^2 + cos^2 = 1 per frequency pair


def test_sincos_similarity_depends_only_on_displacement_and_falls_with_distance():
    sim = pos_embed_similarity(sincos_2d_pos_embed(64, 14))
    assert sim[3, 4, 5, 9] == pytest.approx(sim[0, 0, 2, 5], abs=1e-9)   # same displacement (2, 5)
    assert sim[7, 7, 7, 8] == pytest.approx(sim[0, 0, 0, 1], abs=1e-9)
    row = sim[0, 0, 0]                                                    # from the corner along the first row
    assert row[0] == pytest.approx(1.0)
    assert row[1] > row[2] > row[3] > row[4]
    assert row[1] > row[2:].max()
    assert row[1:4].mean() > row[4:8].mean() > row[8:].mean()
    distance = np.hypot(*np.meshgrid(np.arange(14), np.arange(14), indexing="ij"))
    assert np.corrcoef(distance.ravel(), sim[0, 0].ravel())[0, 1] < -0.5


def test_sincos_rejects_dims_not_divisible_by_4():
    with pytest.raises(ValueError, match="dim must be divisible by 4 for a 2-D sin-cos embedding, got 30"):
        sincos_2d_pos_embed(30, 14)


# ---- position_structure: Figure 7 as numbers ----

def _grid(g):
    return np.divmod(np.arange(g * g), g)


@pytest.mark.parametrize("grid, correlation", [(8, -0.90), (14, -0.84)])
def test_sincos_embeddings_have_strong_2d_structure(grid, correlation):
    numbers = position_structure(sincos_2d_pos_embed(192, grid))
    assert numbers["distance_correlation"] == pytest.approx(correlation, abs=0.01)
    assert numbers["row_column_advantage"] > 0.02          # sin-cos is built from a row half and a column half


def test_random_embeddings_have_none():
    numbers = position_structure(np.random.default_rng(0).standard_normal((1, 1 + 14 * 14, 192)))
    assert abs(numbers["distance_correlation"]) < 0.03 and abs(numbers["row_column_advantage"]) < 0.01


def test_a_shuffled_grid_loses_the_structure():
    """The same 196 sin-cos vectors, assigned to the patches in a random order: no nearness, rows or columns left."""
    sincos = sincos_2d_pos_embed(192, 14)
    order = np.random.default_rng(0).permutation(14 * 14)
    shuffled = np.concatenate([sincos[:, :1], sincos[:, 1:][:, order]], axis=1)
    numbers = position_structure(shuffled)
    assert abs(numbers["distance_correlation"]) < 0.05 and abs(numbers["row_column_advantage"]) < 0.02
    assert position_structure(sincos)["distance_correlation"] < -0.8


def test_row_column_advantage_tells_rows_and_columns_from_plain_nearness():
    g = 8
    rows, cols = _grid(g)
    separable = np.concatenate([np.eye(g)[rows], np.eye(g)[cols]], axis=1)     # only "same row" / "same column"
    assert position_structure(separable)["row_column_advantage"] == pytest.approx(0.5)
    centres = np.random.default_rng(1).uniform(0, g - 1, (256, 2))            # nearness in every direction alike
    isotropic = np.exp(-((rows[:, None] - centres[:, 0]) ** 2 + (cols[:, None] - centres[:, 1]) ** 2) / 8.0)
    numbers = position_structure(isotropic)
    assert numbers["distance_correlation"] < -0.9 and abs(numbers["row_column_advantage"]) < 0.01


def test_position_structure_of_a_model_uses_its_grid():
    model = VisionTransformer(image_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=2)
    model.pos_embed.set_data(ms.Tensor(sincos_2d_pos_embed(16, 4)))
    assert position_structure(model) == position_structure(sincos_2d_pos_embed(16, 4))
    with pytest.raises(ValueError, match="too few kinds of patch pairs"):
        position_structure(np.ones((1, 2, 8)))       # a 1x1 grid: no pairs
