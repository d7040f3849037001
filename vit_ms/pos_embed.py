"""Position-embedding tools: cosine-similarity maps (the paper's Figure 7), resampling, fixed 2-D sin-cos."""
import numpy as np


def _patch_embeddings(model_or_array):
    """[N, D] patch position embeddings (class token dropped) and the grid (gh, gw)."""
    if hasattr(model_or_array, "pos_embed"):
        grid = tuple(model_or_array.grid_size)
        pe = model_or_array.pos_embed.asnumpy()
    else:
        pe = model_or_array.asnumpy() if hasattr(model_or_array, "asnumpy") else np.asarray(model_or_array)
        grid = None
    pe = np.asarray(pe, dtype=np.float64)
    if pe.ndim == 3:
        if pe.shape[0] != 1:
            raise ValueError(f"expected a position embedding [1, 1+N, D], got shape {pe.shape}")
        pe = pe[0]
    if pe.ndim != 2:
        raise ValueError(f"expected a position embedding of shape [1, 1+N, D], [1+N, D] or a model, got {pe.shape}")
    side = int(round(np.sqrt(pe.shape[0] - 1)))
    if grid is None:
        if side * side == pe.shape[0] - 1:
            pe = pe[1:]  # class token + square grid
        else:
            side = int(round(np.sqrt(pe.shape[0])))
            if side * side != pe.shape[0]:
                raise ValueError(f"cannot infer a square patch grid from {pe.shape[0]} position embeddings "
                                 f"(expected 1+N or N with N a square number)")
        grid = (side, side)
    else:
        pe = pe[1:]
    return pe, grid


def pos_embed_similarity(model_or_array):
    """Cosine similarity between patch position embeddings, as an array [gh, gw, gh, gw].

    ``sim[i, j]`` is the map of how similar patch (i, j)'s embedding is to every other patch's.
    Accepts a model with ``pos_embed``, or an array [1, 1+N, D], [1+N, D] (class token first) or [N, D].
    """
    pe, (gh, gw) = _patch_embeddings(model_or_array)
    unit = pe / np.maximum(np.linalg.norm(pe, axis=-1, keepdims=True), 1e-12)
    return (unit @ unit.T).reshape(gh, gw, gh, gw)


def resample_pos_embed(pos_embed, new_grid, num_prefix_tokens=1):
    """Resize the patch part of a position embedding [1, prefix+gh*gw, D] to ``new_grid`` by bicubic
    interpolation in 2-D; the class token's embedding is kept as it is. Returns a float32 NumPy array."""
    pe = pos_embed.asnumpy() if hasattr(pos_embed, "asnumpy") else np.asarray(pos_embed)
    if pe.ndim != 3 or pe.shape[0] != 1:
        raise ValueError(f"expected a position embedding [1, T, D], got shape {pe.shape}")
    new_grid = (new_grid, new_grid) if isinstance(new_grid, int) else tuple(new_grid)
    prefix, patches = pe[:, :num_prefix_tokens], pe[0, num_prefix_tokens:]
    side = int(round(np.sqrt(patches.shape[0])))
    if side * side != patches.shape[0]:
        raise ValueError(f"the patch part of the position embedding ({patches.shape[0]} tokens) is not a square grid")
    if (side, side) == new_grid:
        return pe.astype(np.float32)
    from PIL import Image  # bicubic resize per channel, the same interpolation timm uses
    channels = [np.asarray(Image.fromarray(patches[:, c].reshape(side, side).astype(np.float32), mode="F")
                           .resize((new_grid[1], new_grid[0]), Image.BICUBIC)) for c in range(pe.shape[-1])]
    resized = np.stack(channels, axis=-1).reshape(1, -1, pe.shape[-1])
    return np.concatenate([prefix, resized], axis=1).astype(np.float32)


def sincos_2d_pos_embed(dim, grid, class_token=True, temperature=10000.0):
    """Fixed 2-D sine-cosine position embedding [1, (1+)gh*gw, dim] (half the channels encode the row, half the
    column; MAE/"Simple ViT" style). The class token, if asked for, gets zeros."""
    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    if dim % 4 != 0:
        raise ValueError(f"dim must be divisible by 4 for a 2-D sin-cos embedding, got {dim}")
    omega = 1.0 / temperature ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))
    rows, cols = np.meshgrid(np.arange(gh, dtype=np.float64), np.arange(gw, dtype=np.float64), indexing="ij")
    out_r, out_c = rows.reshape(-1, 1) * omega, cols.reshape(-1, 1) * omega
    pe = np.concatenate([np.sin(out_r), np.cos(out_r), np.sin(out_c), np.cos(out_c)], axis=1)
    if class_token:
        pe = np.concatenate([np.zeros((1, dim)), pe], axis=0)
    return pe[None].astype(np.float32)


def position_structure(model_or_array):
    """How much 2-D grid structure the patch position embeddings have (the paper's Figure 7, as numbers).

    Over all pairs of distinct patches, with cosine similarity s and Euclidean grid distance d:
    - ``distance_correlation``: Pearson correlation of s with d. Negative: nearby patches have similar embeddings
      (2-D sin-cos: about -0.9); about 0 for random embeddings.
    - ``row_column_advantage``: mean, over pairs in the same row or column at distance >= 2, of s minus the
      similarity that off-axis pairs have at that distance (their mean similarity per distance, interpolated).
      Positive: rows and columns stand out, the bright "cross" of Figure 7.
    - ``same_row_or_column``, ``off_axis``: the mean similarity of the two kinds of pairs.
    Accepts what ``pos_embed_similarity`` accepts; returns a dict of floats.
    """
    sim = pos_embed_similarity(model_or_array)
    gh, gw = sim.shape[:2]
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    first, second = np.triu_indices(gh * gw, k=1)                       # every pair of distinct patches once
    s = sim.reshape(gh * gw, gh * gw)[first, second]
    dr, dc = np.abs(rows[first] - rows[second]), np.abs(cols[first] - cols[second])
    distance = np.hypot(dr, dc)
    aligned = (dr == 0) | (dc == 0)
    if aligned.all() or not aligned.any() or np.std(s) == 0:
        raise ValueError(f"a {gh}x{gw} patch grid has too few kinds of patch pairs to measure 2-D structure")
    off_distances, inverse = np.unique(distance[~aligned], return_inverse=True)
    off_mean = np.bincount(inverse, weights=s[~aligned]) / np.bincount(inverse)
    compared = aligned & (distance >= max(2.0, off_distances[0]))       # inside the off-axis distance range
    compared &= distance <= off_distances[-1]
    expected = np.interp(distance[compared], off_distances, off_mean)
    return dict(distance_correlation=float(np.corrcoef(s, distance)[0, 1]),
                row_column_advantage=float(np.mean(s[compared] - expected)) if compared.any() else float("nan"),
                same_row_or_column=float(s[aligned].mean()), off_axis=float(s[~aligned].mean()))
