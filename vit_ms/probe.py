"""What a ViT learned, as numbers: the left and right panels of the paper's Figure 7.

- ``embedding_filters``: the principal components of the patch-embedding filters (left panel);
- ``attention_distance``: how far, in pixels, each head of each block looks (right panel);
- ``mean_attention_distance`` and ``uniform_attention_distance``: the same measure for attention weights given
  by hand, and its value for attention spread evenly over the image (the line that tells local heads from global).

The centre panel, the cosine similarity of position embeddings, is ``vit_ms.pos_embed_similarity``.
"""
import numpy as np

from .checks import check_int


def embedding_filters(model_or_weight, n=28):
    """The top-n principal components of the patch-embedding filters, as images [n, P, P, C], and the singular
    values of all components (strongest first).

    The patch projection is one Dense layer over a flattened patch: its weight, reshaped to [D, C*P*P], holds one
    filter per embedding dimension. Its (uncentred) SVD, W = U S V^T, gives the patch patterns the D filters are
    built from: row k of V^T is component k, reshaped to a P x P x C image; S[k] is how much of the weight it carries
    (S[k]^2 / sum(S^2) is its share of the squared weight). The sign of each component is arbitrary, as in any SVD.
    Accepts a model (``patch_embed.proj.weight``) or a weight array [D, C, P, P].
    """
    if hasattr(model_or_weight, "patch_embed"):
        weight = model_or_weight.patch_embed.proj.weight.asnumpy()
    else:
        weight = model_or_weight.asnumpy() if hasattr(model_or_weight, "asnumpy") else np.asarray(model_or_weight)
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"expected a model or a patch-projection weight [D, C, P, P], got shape {weight.shape}")
    d, c, p, _ = weight.shape
    n = check_int(n, "n (number of components)")
    if n > min(d, c * p * p):
        raise ValueError(f"a [{d}, {c * p * p}] filter bank has at most {min(d, c * p * p)} components, asked for {n}")
    _, singular, components = np.linalg.svd(weight.reshape(d, c * p * p).astype(np.float64), full_matrices=False)
    return components[:n].reshape(n, c, p, p).transpose(0, 2, 3, 1), singular


def _patch_distances(grid_size, patch_size):
    """[N, N] Euclidean distance in pixels between the centres of patches, row-major over a (gh, gw) grid."""
    gh, gw = (grid_size, grid_size) if np.isscalar(grid_size) else tuple(grid_size)
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    return patch_size * np.hypot(rows[:, None] - rows[None, :], cols[:, None] - cols[None, :])


def uniform_attention_distance(grid_size, patch_size):
    """The mean attention distance of a head that spreads each patch's attention evenly over all patches (itself
    included): the mean pixel distance between two patch centres of the grid. 33.1 px for an 8 x 8 grid of 8-px
    patches, 116.5 px for ViT-B/16's 14 x 14 grid of 16-px patches. Heads well below it are local."""
    return float(_patch_distances(grid_size, patch_size).mean())


def mean_attention_distance(attention, patch_size, grid_size=None, num_prefix_tokens=1):
    """Mean attention distance in pixels of attention weights [..., T, T] (rows: queries, softmax over keys),
    averaged over the patch queries: an array of the leading shape (e.g. [B, heads]).

    The first ``num_prefix_tokens`` tokens (the class token) are dropped as queries and as keys; each patch query's
    row is renormalised to sum to 1 over the patch keys, multiplied by the pixel distance between the patch centres
    (patch_size x grid distance) and summed. Uniform rows give ``uniform_attention_distance``; rows that only weigh
    the 4 grid neighbours give exactly ``patch_size``. grid_size: (gh, gw), or None for a square grid.
    """
    attention = np.asarray(attention.asnumpy() if hasattr(attention, "asnumpy") else attention, dtype=np.float64)
    if attention.ndim < 2 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(f"expected attention weights [..., T, T], got shape {attention.shape}")
    patches = attention[..., num_prefix_tokens:, num_prefix_tokens:]
    n = patches.shape[-1]
    if grid_size is None:
        side = int(round(np.sqrt(n)))
        if side * side != n:
            raise ValueError(f"{n} patch tokens are not a square grid: pass grid_size=(gh, gw)")
        grid_size = (side, side)
    gh, gw = (grid_size, grid_size) if np.isscalar(grid_size) else tuple(grid_size)
    if gh * gw != n:
        raise ValueError(f"grid_size {gh}x{gw} = {gh * gw} patches, but the attention has {n} patch tokens")
    if (patches < 0).any():
        raise ValueError("attention weights must be >= 0 (softmax probabilities, not scores)")
    totals = patches.sum(axis=-1, keepdims=True)
    if (totals <= 0).any():
        raise ValueError("every patch query needs some weight on the patch keys to renormalise")
    distance = (patches / totals * _patch_distances((gh, gw), patch_size)).sum(axis=-1)  # [..., N queries]
    return distance.mean(axis=-1)


def attention_distance(model, images, batch_size=16):
    """Mean attention distance in pixels of every head of every block, [depth, heads], averaged over images.

    The model's own attention weights (``model.attention_maps``, in eval mode, whichever layers the model was built
    with) measured by ``mean_attention_distance``. images: normalised model input [B, C, H, W] (NumPy or Tensor).
    Compare with ``uniform_attention_distance(model.grid_size, model.patch_size)``, the distance of attention spread
    evenly over the image (33.1 px for the demo's 8 x 8 grid of 8-px patches, 116.5 px for ViT-B/16): the paper's
    large models have heads far below it in the first blocks (local) and heads near it (global).
    """
    import mindspore as ms

    images = np.asarray(images.asnumpy() if hasattr(images, "asnumpy") else images, dtype=np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"expected a non-empty image batch [B, C, H, W], got shape {images.shape}")
    batch_size = check_int(batch_size, "batch_size")
    training = model.training
    model.set_train(False)
    try:
        total = 0.0
        for start in range(0, len(images), batch_size):
            maps = model.attention_maps(ms.Tensor(images[start:start + batch_size]))
            per_image = np.stack([mean_attention_distance(m.asnumpy(), model.patch_size, model.grid_size)
                                  for m in maps])                                # [depth, B, heads]
            total = total + per_image.sum(axis=1)
    finally:
        model.set_train(training)
    return total / len(images)
