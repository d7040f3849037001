"""Figures for the course (matplotlib). Every function returns the Figure and never calls plt.show().

Figures are made with pyplot (so Jupyter's inline backend shows them) and then drawn only through the
Figure/Axes methods, which works the same on the Agg backend of a headless machine. Callers close them
(``plt.close(fig)``) when saving many.

Titles and axis labels are Chinese with the English term in parentheses, as the notebooks' prose is, when a font
with Chinese glyphs is there (``vit_ms.fonts``; importing this module puts it behind matplotlib's default font);
English alone otherwise.
"""
import numpy as np

from .checks import check_int
from .fonts import bilingual, use_chinese_font
from .metrics import ranked

use_chinese_font()  # figures made after importing this module, the notebooks' own included, can show Chinese



def _new_figure(figsize, layout=None):
    import matplotlib.pyplot as plt
    use_chinese_font()  # before the figure: its axes keep the fonts of the moment they are made
    return plt.figure(figsize=figsize, layout=layout)


def _as_image(image):
    """A displayable HWC array from a uint8 / float-in-[0, 1] array [H, W, 3|4] or [H, W], a PIL image or a path."""
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        from PIL import Image
        image = Image.open(image).convert("RGB")
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        channels_first = array.ndim == 3 and array.shape[0] in (1, 3)
        hint = " (channels first? pass image.transpose(1, 2, 0))" if channels_first else ""
        raise ValueError(f"expected an image [H, W, 3] (uint8, or float in [0, 1]), a PIL image or a path; "
                         f"got shape {array.shape}{hint}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"an image array must be uint8 or float in [0, 1], got dtype {array.dtype}")
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        if low < -1e-3 or high > 1 + 1e-3:
            raise ValueError(f"a float image must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]: pass the "
                             f"uint8 image to display (load_image returns it second), not the normalised model input")
        array = np.clip(array, 0.0, 1.0)
    return array


def _image_grid(image, patch_size):
    """(gh, gw) of an image cut into patch_size x patch_size patches; the size must divide evenly, as in PatchEmbed."""
    h, w = image.shape[:2]
    patch_size = check_int(patch_size, "patch_size")
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_size={patch_size}")
    return h // patch_size, w // patch_size


def _outlined():
    """Path effect that keeps white text readable on any image: a black outline around it."""
    from matplotlib import patheffects
    return [patheffects.withStroke(linewidth=1.5, foreground="black")]


# ---- patches ----

def plot_patch_grid(image, patch_size=16, ax=None, show_index=False):
    """The image with the patch grid over it (how PatchEmbed cuts it); show_index numbers the patches 0..N-1 in
    sequence order (row by row), the order the transformer reads them (token k+1, after the class token)."""
    image = _as_image(image)
    gh, gw = _image_grid(image, patch_size)
    fig = ax.figure if ax is not None else _new_figure((5, 5))
    ax = ax if ax is not None else fig.add_subplot(1, 1, 1)
    ax.imshow(image)
    h, w = image.shape[:2]
    ax.vlines(np.arange(0, w + 1, patch_size) - 0.5, -0.5, h - 0.5, colors="white", linewidth=0.8, alpha=0.9)
    ax.hlines(np.arange(0, h + 1, patch_size) - 0.5, -0.5, w - 0.5, colors="white", linewidth=0.8, alpha=0.9)
    if show_index:
        fontsize = max(4.0, min(9.0, 90.0 / max(gh, gw)))
        for k in range(gh * gw):
            i, j = divmod(k, gw)
            ax.text((j + 0.5) * patch_size - 0.5, (i + 0.5) * patch_size - 0.5, str(k), color="white",
                    ha="center", va="center", fontsize=fontsize, path_effects=_outlined())
    ax.set_title(bilingual(f"{gh}×{gw} = {gh * gw} 个图块，每块 {patch_size}×{patch_size} 像素",
                           f"{gh} x {gw} = {gh * gw} patches of {patch_size} x {patch_size} pixels"))
    ax.axis("off")
    return fig


def patch_sequence_mosaic(image, patch_size, num_patches, cols, gap=2):
    """The first num_patches patches in sequence order, wrapped every ``cols`` patches, ``gap`` white pixels apart.
    Returns an array of the image's dtype; patch k sits at row k // cols, column k % cols."""
    image = _as_image(image)
    gh, gw = _image_grid(image, patch_size)
    patches = image.reshape(gh, patch_size, gw, patch_size, -1).transpose(0, 2, 1, 3, 4).reshape(
        gh * gw, patch_size, patch_size, -1)[:num_patches]
    rows, step = -(-num_patches // cols), patch_size + gap
    white = 255 if image.dtype == np.uint8 else 1.0
    mosaic = np.full((rows * step - gap, cols * step - gap, image.shape[2]), white, dtype=image.dtype)
    for k, patch in enumerate(patches):
        r, c = divmod(k, cols)
        mosaic[r * step:r * step + patch_size, c * step:c * step + patch_size] = patch
    return mosaic


def plot_patches(image, patch_size=16, max_patches=None, cols=None):
    """The patches as the sequence the transformer reads: row by row, wrapped every ``cols`` patches (default
    twice the grid width, so the wrap does not line up with the image rows), each labelled with its index.

    max_patches: show only the first ones (None: all). Drawn as one image, so 576 patches still render quickly.
    """
    image = _as_image(image)
    gh, gw = _image_grid(image, patch_size)
    total = gh * gw
    n = total if max_patches is None else min(check_int(max_patches, "max_patches"), total)
    cols = min(n, 2 * gw) if cols is None else check_int(cols, "cols")
    rows, gap = -(-n // cols), max(1, patch_size // 8)
    mosaic = patch_sequence_mosaic(image, patch_size, n, cols, gap)
    cell = min(0.45, 11.0 / cols)  # inches per patch
    fig = _new_figure((cols * cell + 0.3, rows * cell + 0.7))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(mosaic, interpolation="nearest")
    step = patch_size + gap
    fontsize = max(4.0, min(7.0, cell * 16))
    for k in range(n):
        r, c = divmod(k, cols)
        ax.text(c * step + 1, r * step + 1, str(k), color="white", ha="left", va="top", fontsize=fontsize,
                path_effects=_outlined())
    ax.axis("off")
    shown = f"{n} patches" if n == total else f"the first {n} of {total} patches"
    shown_zh = f"{n} 个图块" if n == total else f"{total} 个图块中的前 {n} 个"
    wrap = "one image row per line" if cols == gw else f"{cols} per line"
    wrap_zh = "每行一行图块" if cols == gw else f"每行 {cols} 个"
    numbers = f"{patch_size}x{patch_size}x{image.shape[2]} = {patch_size * patch_size * image.shape[2]}"
    ax.set_title(bilingual(f"{shown_zh}，按序列顺序（逐行）排列，{wrap_zh}，每块 {numbers} 个数",
                           f"{shown} in sequence order (row by row), {wrap}, each {numbers} numbers"), fontsize=9)
    return fig


# ---- position-embedding similarity (the paper's Figure 7) ----

def similarity_mosaic(sim):
    """Tile sim [gh, gw, th, tw] into one array [gh*th, gw*tw]: tile (i, j) is sim[i, j]."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 4:
        raise ValueError(f"expected similarities [gh, gw, gh, gw] (from pos_embed_similarity), got shape {sim.shape}")
    gh, gw, th, tw = sim.shape
    return sim.transpose(0, 2, 1, 3).reshape(gh * th, gw * tw)


def _checked_similarities(sims):
    checked = []
    for sim in sims:
        sim = np.asarray(sim, dtype=np.float64)
        if sim.ndim != 4 or sim.shape[:2] != sim.shape[2:]:
            raise ValueError(f"expected similarities [gh, gw, gh, gw] (from pos_embed_similarity), "
                             f"got shape {sim.shape}")
        if not np.isfinite(sim).all() or sim.min() < -1 - 1e-6 or sim.max() > 1 + 1e-6:
            raise ValueError(f"cosine similarities must be finite and in [-1, 1], got values in "
                             f"[{np.nanmin(sim):.3g}, {np.nanmax(sim):.3g}]")
        checked.append(sim)
    return checked


def similarity_color_range(sims):
    """(vmin, 1.0) for the colour bar: from the lowest similarity shown (rounded down to 0.1) up to 1.

    Self-similarity, 1, is always the top colour. Starting at the data's minimum rather than at -1 spends the
    colours on the values present: a 2-D sin-cos embedding only spans about [0.6, 1], and on a -1..1 scale its
    structure would be one flat yellow. Side-by-side mosaics each take the range of their own values.
    """
    low = min(float(s.min()) for s in _checked_similarities(sims))
    return max(-1.0, min(np.floor(low * 10) / 10, 0.9)), 1.0


def _draw_similarity(ax, sim, title, vmin, vmax):
    """One Figure-7 mosaic on ax: a single imshow, white lines between tiles, 1-based patch row/column ticks."""
    gh, gw = sim.shape[:2]
    image = ax.imshow(similarity_mosaic(sim), cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
    height, width = gh * gh, gw * gw
    linewidth = 0.8 if max(gh, gw) <= 16 else 0.5
    ax.vlines(np.arange(1, gw) * gw - 0.5, -0.5, height - 0.5, colors="white", linewidth=linewidth)
    ax.hlines(np.arange(1, gh) * gh - 0.5, -0.5, width - 0.5, colors="white", linewidth=linewidth)
    every = max(1, -(-max(gh, gw) // 16))  # at most ~16 tick labels per axis
    cols, rows = np.arange(0, gw, every), np.arange(0, gh, every)
    ax.set_xticks(cols * gw + gw / 2 - 0.5, [str(j + 1) for j in cols], fontsize=7)
    ax.set_yticks(rows * gh + gh / 2 - 0.5, [str(i + 1) for i in rows], fontsize=7)
    ax.tick_params(length=0)
    ax.set_xlabel(bilingual("输入图块的列", "input patch column"))
    ax.set_ylabel(bilingual("输入图块的行", "input patch row"))
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)
    return image


def plot_pos_embed_similarity(sim, title=None):
    """The paper's Figure 7: for each patch (i, j), a small map of the cosine similarity of its position embedding
    to every patch's, placed at (i, j) in a gh x gw grid of maps. sim: [gh, gw, gh, gw] from pos_embed_similarity.

    One imshow of the tiled maps (similarity_mosaic), so 24 x 24 grids draw as fast as 8 x 8. The colour bar runs
    from the lowest similarity up to 1 (see similarity_color_range; the paper's figure uses -1..1).
    """
    (sim,) = _checked_similarities([sim])
    fig = _new_figure((6.4, 5.6))
    ax = fig.add_subplot(1, 1, 1)
    image = _draw_similarity(ax, sim, title or bilingual("位置编码相似度", "position embedding similarity"),
                             *similarity_color_range([sim]))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label=_cosine_label())
    return fig


def plot_pos_embed_comparison(sims):
    """Side-by-side Figure-7 mosaics, {title: sim [gh, gw, gh, gw]}, each on its own colour scale with its own
    colour bar (similarity_color_range of that panel): a 2-D sin-cos embedding spans only about [0.6, 1] and a
    trained one reaches far lower, so one shared scale would flatten the sin-cos panel. Compare shapes across panels,
    and numbers (position_structure) only between grids of the same size."""
    if not isinstance(sims, dict) or not sims:
        raise ValueError(f"plot_pos_embed_comparison needs a non-empty dict {{title: similarity}}, "
                         f"got {type(sims).__name__}")
    values = _checked_similarities(sims.values())
    fig = _new_figure((5.2 * len(sims), 4.9), layout="constrained")
    for k, (title, sim) in enumerate(zip(sims, values)):
        ax = fig.add_subplot(1, len(sims), k + 1)
        grid = f"{sim.shape[0]}x{sim.shape[1]}"
        named = grid in str(title).replace(" ", "")
        title = str(title) if named else f"{title} ({grid})"   # the grid, unless the title names it
        image = _draw_similarity(ax, sim, title, *similarity_color_range([sim]))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label=_cosine_label())
    return fig


# ---- Figure 7: filters, position similarity, attention distance ----

def filter_mosaic(filters, cols=7, gap=1):
    """Components [n, P, P, C] (embedding_filters) as one RGB array, ``cols`` per row, ``gap`` white pixels apart;
    each component rescaled on its own to [0, 1] (its sign is arbitrary, so only its pattern matters)."""
    filters = np.asarray(filters, dtype=np.float64)
    if filters.ndim != 4 or filters.shape[-1] not in (1, 3):
        raise ValueError(f"expected filters [n, P, P, C] with C = 1 or 3 (from embedding_filters), got shape "
                         f"{filters.shape}")
    n, p = filters.shape[0], filters.shape[1]
    low = filters.min(axis=(1, 2, 3), keepdims=True)
    span = np.maximum(filters.max(axis=(1, 2, 3), keepdims=True) - low, 1e-12)
    scaled = np.repeat((filters - low) / span, 3 // filters.shape[-1], axis=-1)
    cols = min(check_int(cols, "cols"), n)
    rows, step = -(-n // cols), p + gap
    mosaic = np.ones((rows * step - gap, cols * step - gap, 3))
    for k in range(n):
        r, c = divmod(k, cols)
        mosaic[r * step:r * step + p, c * step:c * step + p] = scaled[k]
    return mosaic


def _cosine_label():
    return bilingual("余弦相似度", "cosine similarity")


def _draw_attention_distance(ax, distances, uniform, title=None):
    """Figure 7 right: one dot per head at (block, mean distance), and the uniform-attention distance as a line."""
    depth, heads = distances.shape
    colours = [f"C{h % 10}" for h in range(heads)]
    for block in range(depth):
        ax.scatter(np.full(heads, block + 1), distances[block], c=colours, s=22, zorder=3)
    ax.axhline(uniform, color="gray", linestyle="--", linewidth=1,
               label=bilingual(f"均匀注意力 {uniform:.1f} 像素", f"uniform attention, {uniform:.1f} px"))
    ax.set(xlabel=bilingual("网络深度（第几块）", "network depth, block"),
           ylabel=bilingual("平均注意力距离（像素）", "mean attention distance, px", sep="\n"),
           ylim=(0, max(1.25 * uniform, 1.05 * float(distances.max()))), xlim=(0.5, depth + 0.5))
    ax.set_xticks(range(1, depth + 1) if depth <= 12 else range(1, depth + 1, max(1, depth // 12)))
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)


def plot_figure7(models, images, n_filters=28, distances=None):
    """The paper's Figure 7 for one model or each of {title: model} (one row each), three panels:

    - left: the top ``n_filters`` principal components of the patch-embedding filters (embedding_filters), each an
      RGB image rescaled on its own, strongest first (row by row), titled with the share of the squared weight they
      carry together;
    - centre: the cosine similarity of the position embeddings (pos_embed_similarity), on its own colour scale;
    - right: every head's mean attention distance against block index (attention_distance on ``images``, the
      normalised model input [B, C, H, W]), with the distance of uniform attention as a dashed line.

    distances: optional {title: [depth, heads]} already measured (skips measuring those again).
    """
    from .pos_embed import pos_embed_similarity
    from .probe import attention_distance, embedding_filters, uniform_attention_distance

    models = models if isinstance(models, dict) else {"": models}
    if not models:
        raise ValueError("plot_figure7 needs a model or a non-empty dict {title: model}")
    distances = dict(distances or {})
    fig = _new_figure((18.0, 5.2 * len(models)), layout="constrained")
    for row, (title, model) in enumerate(models.items()):
        filters, singular = embedding_filters(model, n=min(n_filters, model.embed_dim))
        share = float((singular[:len(filters)] ** 2).sum() / (singular ** 2).sum())
        measured = distances[title] if title in distances else attention_distance(model, images)
        measured = np.asarray(measured, dtype=np.float64)
        if measured.shape != (len(model.blocks), model.blocks[0].attn.num_heads):
            raise ValueError(f"distances for {title!r} must be [depth, heads] = [{len(model.blocks)}, "
                             f"{model.blocks[0].attn.num_heads}], got shape {measured.shape}")
        prefix = f"{title}: " if title else ""
        left, centre, right = (fig.add_subplot(len(models), 3, 3 * row + k + 1) for k in range(3))
        left.imshow(filter_mosaic(filters), interpolation="nearest")
        zh = f"图块嵌入滤波器的前 {len(filters)} 个主成分，占权重平方和的 {share:.0%}"
        en = f"RGB embedding filters: first {len(filters)} principal components, {share:.0%} of the weight"
        left.set_title(prefix + bilingual(zh, en, sep="\n"), fontsize=10)
        left.axis("off")
        sim = pos_embed_similarity(model)
        title = prefix + bilingual("位置编码相似度", "position embedding similarity", sep="\n")
        image = _draw_similarity(centre, sim, title, *similarity_color_range([sim]))
        fig.colorbar(image, ax=centre, fraction=0.046, pad=0.03, label=_cosine_label())
        images_en = f"{len(images)} image{'s' * (len(images) != 1)}"
        _draw_attention_distance(right, measured, uniform_attention_distance(model.grid_size, model.patch_size),
                                 prefix + bilingual(f"平均注意力距离（{len(images)} 张图）",
                                                    f"mean attention distance, {images_en}", sep="\n"))
    return fig


# ---- the network at a glance ----

_STAGE_ZH = {"input image": "输入图像", "patch embedding": "图块嵌入", "+ class token": "+ 类别 token",
             "+ position embedding": "+ 位置编码", "encoder block": "编码器块", "final LayerNorm": "最后的 LayerNorm",
             "class token": "取类别 token", "mean of patch tokens": "图块 token 取平均",
             "pre-logits Dense + tanh": "pre-logits Dense + tanh", "classification head": "分类头"}

def _architecture_stages(rows):
    """(label, shape, parameters) per box: consecutive encoder blocks become one box "encoder block x L"."""
    stages = []
    for name, shape, params in rows:
        if name.startswith("encoder block") and stages and stages[-1][0].startswith("encoder block"):
            count = stages[-1][3] + 1
            stages[-1] = (f"encoder block x {count}", tuple(shape), stages[-1][2] + params, count)
        else:
            stages.append((name, tuple(shape), params, 1))
    return [(name, shape, params) for name, shape, params, _ in stages]


def plot_architecture(summary):
    """A flow chart of the network from ``vit_ms.summary(model, input_size)``: one box per stage, top to bottom,
    each with the output shape and parameter count that summary measured by running the model (the encoder
    blocks, all of one shape, share one box)."""
    rows = getattr(summary, "rows", None)
    if not rows:
        raise TypeError(f"plot_architecture expects what vit_ms.summary returns, got {type(summary).__name__}")
    stages = _architecture_stages(rows)
    fig = _new_figure((6.2, 0.78 * len(stages) + 0.4))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, 10), ylim=(len(stages) - 0.45, -0.55))
    ax.axis("off")
    for k, (name, shape, params) in enumerate(stages):
        encoder = name.startswith("encoder block")
        base, _, times = name.partition(" x ")  # "encoder block x 12"
        label = bilingual(_STAGE_ZH.get(base, base) + (f" ×{times}" if times else ""), name)
        count = f"{params:,} " + bilingual("个参数", "parameters")
        ax.text(5, k, f"{label}\n{list(shape)}" + (f"   {count}" if params else ""), ha="center",
                va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.4", facecolor="#fde9c9" if encoder else "#dbe8f6",
                          edgecolor="#555555", linewidth=0.8))
        if k:
            ax.annotate("", xy=(5, k - 0.3), xytext=(5, k - 0.7),
                        arrowprops=dict(arrowstyle="->", color="#555555", linewidth=1))
    return fig


# ---- attention ----

def _attention_layers(attn_maps):
    """List of [heads, T, T] float64 arrays from a list of [heads, T, T] or [1, heads, T, T] (NumPy or Tensors)."""
    if attn_maps is None or len(attn_maps) == 0:
        raise ValueError("expected a non-empty list of attention maps, one [heads, T, T] per block")
    layers = []
    for i, attn in enumerate(attn_maps):
        attn = np.asarray(attn.asnumpy() if hasattr(attn, "asnumpy") else attn, dtype=np.float64)
        if attn.ndim == 4:
            if attn.shape[0] != 1:
                raise ValueError(f"attention maps are drawn for one image: block {i} has a batch of {attn.shape[0]} "
                                 f"(pass [m[k] for m in maps] to pick image k)")
            attn = attn[0]
        if attn.ndim != 3 or attn.shape[1] != attn.shape[2]:
            raise ValueError(f"block {i}: expected attention [heads, T, T] or [1, heads, T, T], got {attn.shape}")
        if layers and attn.shape[1:] != layers[0].shape[1:]:
            raise ValueError(f"block {i} has {attn.shape[1]} tokens but block 0 has {layers[0].shape[1]}")
        sums = attn.sum(axis=-1)
        if (attn < -1e-6).any() or not np.allclose(sums, 1.0, atol=1e-2):
            raise ValueError(f"block {i}: attention rows must be softmax weights (>= 0, summing to 1), got row sums "
                             f"in [{sums.min():.3g}, {sums.max():.3g}]: pass attention probabilities, not scores")
        layers.append(attn)
    return layers


def attention_rollout(attn_maps):
    """Attention rollout (Abnar & Zuidema, 2020) through all the given blocks, [T, T].

    Per block: average the heads, add the residual connection as the identity, A' = 0.5 A + 0.5 I, and renormalise
    the rows; then chain the blocks, R = A'_L ... A'_2 A'_1. Row 0 of R is how much the class token at the output
    draws, through every path in the network, on each input token. attn_maps: list of [heads, T, T] or
    [1, heads, T, T], as model.attention_maps gives. Every row of R sums to 1.
    """
    rollout = None
    for attn in _attention_layers(attn_maps):
        a = 0.5 * attn.mean(axis=0) + 0.5 * np.eye(attn.shape[-1])
        a /= a.sum(axis=-1, keepdims=True)
        rollout = a if rollout is None else a @ rollout
    return rollout


def _token_grid(num_tokens, grid_size):
    patches = num_tokens - 1  # the class token comes first
    if grid_size is None:
        side = int(round(np.sqrt(patches)))
        if side * side != patches:
            raise ValueError(f"{num_tokens} tokens is not 1 + a square number of patches: pass grid_size=(gh, gw)")
        return side, side
    gh, gw = (grid_size, grid_size) if np.isscalar(grid_size) else tuple(grid_size)
    if gh * gw != patches:
        raise ValueError(f"grid_size {gh}x{gw} = {gh * gw} patches, but the attention has {patches} patch tokens")
    return gh, gw


def plot_attention_maps(image, attn_maps, layers=None, grid_size=None):
    """Where the class token looks: for chosen blocks (0-based indices as in model.blocks; default first, middle,
    last) its attention to each patch, averaged over heads, and the attention rollout through all blocks. Each map
    is upsampled (bilinear) over the image and scaled to its own maximum.

    attn_maps: list over blocks of [heads, T, T] or [1, heads, T, T] (model.attention_maps(x) for one image).
    """
    image = _as_image(image)
    maps = _attention_layers(attn_maps)
    gh, gw = _token_grid(maps[0].shape[-1], grid_size)
    depth = len(maps)
    layers = sorted({0, depth // 2, depth - 1}) if layers is None else list(layers)
    bad = [i for i in layers if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < depth]
    if bad or not layers:
        raise ValueError(f"layers must be block indices in [0, {depth - 1}], got {layers}")
    panels = [(bilingual(f"第 {i} 块" + ("，最后一块" if i == depth - 1 else ""),
                         f"block {i}" + (", last" if i == depth - 1 else "")), maps[i].mean(axis=0)[0, 1:])
              for i in layers]
    panels.append((bilingual(f"{depth} 块累积", f"rollout, {depth} blocks"), attention_rollout(maps)[0, 1:]))
    fig = _new_figure((2.5 * (len(panels) + 1), 3.0))
    ax = fig.add_subplot(1, len(panels) + 1, 1)
    ax.imshow(image)
    ax.set_title(bilingual("输入", "input"), fontsize=10)
    ax.axis("off")
    h, w = image.shape[:2]
    for k, (title, weights) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels) + 1, k + 2)
        ax.imshow(image)
        ax.imshow(weights.reshape(gh, gw), cmap="inferno", alpha=0.6, vmin=0, vmax=max(weights.max(), 1e-12),
                  extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="bilinear")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle(bilingual("类别 token 对各图块的注意力（各头平均；每张图从 0 到它自己的最大值着色）",
                           "class-token attention to the patches (mean over heads; each map from 0 to its maximum)"),
                 fontsize=10)
    fig.tight_layout()
    return fig


# ---- training and evaluation ----

def _series(history, key):
    return np.array([h.get(key, np.nan) for h in history], dtype=np.float64)


def plot_training_curves(history, lr_schedule=None, steps_per_epoch=None):
    """Loss, accuracy and learning rate from a training history (a list of per-epoch dicts with epoch, train_loss
    and optionally val_loss, train_top1, val_top1, val_top5, lr, as train() records). With ``lr_schedule`` (one
    rate per step, metrics["lr_schedule"]) and ``steps_per_epoch`` the rate is drawn step by step; otherwise the
    epoch-end rates are."""
    if not history or not all(isinstance(h, dict) for h in history):
        raise ValueError("plot_training_curves needs a non-empty list of per-epoch dicts")
    missing = [k for k in ("epoch", "train_loss") if any(k not in h for h in history)]
    if missing:
        raise ValueError(f"every history entry needs the keys 'epoch' and 'train_loss'; missing: {missing}")
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    epochs = _series(history, "epoch")
    has = {key: not np.isnan(_series(history, key)).all() for key in
           ("val_loss", "train_top1", "val_top1", "val_top5", "lr")}
    if lr_schedule is not None:
        if not steps_per_epoch or steps_per_epoch < 1:
            raise ValueError(f"lr_schedule needs steps_per_epoch (a positive integer), got {steps_per_epoch!r}")
        has["lr"] = True
    panels = ["loss"] + (["accuracy"] if has["train_top1"] or has["val_top1"] or has["val_top5"] else []) + \
             (["lr"] if has["lr"] else [])
    fig = _new_figure((4.3 * len(panels), 3.5))
    axes = {name: fig.add_subplot(1, len(panels), k + 1) for k, name in enumerate(panels)}
    marker = "o-" if len(history) <= 30 else "-"
    ax = axes["loss"]
    ax.plot(epochs, _series(history, "train_loss"), marker, label=bilingual("训练", "train"))
    if has["val_loss"]:
        ax.plot(epochs, _series(history, "val_loss"), marker, label=bilingual("验证", "val"))
    ax.set(title=bilingual("损失", "loss"), xlabel="epoch", ylabel=bilingual("交叉熵", "cross-entropy"))
    ax.legend()
    if "accuracy" in axes:
        ax = axes["accuracy"]
        for key, zh, label in (("train_top1", "训练", "train top-1"), ("val_top1", "验证", "val top-1"),
                               ("val_top5", "验证", "val top-5")):
            if has[key]:
                ax.plot(epochs, _series(history, key), marker, label=bilingual(zh, label))
        ax.set(title=bilingual("准确率", "accuracy"), xlabel="epoch", ylim=(0, 1.02))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.legend()
    if "lr" in axes:
        ax = axes["lr"]
        if lr_schedule is not None:  # step k ends at epoch (k + 1) / steps_per_epoch
            ax.plot((np.arange(len(lr_schedule)) + 1) / steps_per_epoch, lr_schedule, "-")
            ax.set(title=bilingual("学习率（每一步）", "learning rate, every step"), xlabel="epoch")
        else:
            ax.plot(epochs, _series(history, "lr"), marker)
            ax.set(title=bilingual("学习率（每个 epoch 结束时）", "learning rate, end of epoch"), xlabel="epoch")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for ax in axes.values():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm, class_names, normalize=True):
    """Rows: true class, columns: predicted class. normalize=True divides each row by its count (so the diagonal
    is the per-class accuracy; a class with no samples stays an all-zero row). Cell values are written for up to
    20 classes, class names for up to 60."""
    cm = np.asarray(cm, dtype=np.float64)
    n = len(class_names)
    if cm.ndim != 2 or cm.shape != (n, n):
        raise ValueError(f"expected a confusion matrix [{n}, {n}] for {n} class names, got shape {cm.shape}")
    totals = cm.sum(axis=1, keepdims=True)
    values = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0) if normalize else cm
    side = min(12.0, max(4.0, 0.45 * n + 2))
    fig = _new_figure((side + 1.0, side))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else max(values.max(), 1))
    if n <= 60:
        ax.set_xticks(range(n), [str(c) for c in class_names], rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), [str(c) for c in class_names], fontsize=8)
    ax.set(xlabel=bilingual("预测类别", "predicted class"), ylabel=bilingual("真实类别", "true class"),
           title=bilingual("混淆矩阵" + ("（每行除以该行总数）" if normalize else "（计数）"),
                           "confusion matrix" + (", each row divided by its count" if normalize else ", counts")))
    if n <= 20:
        top = values.max() if values.max() > 0 else 1
        for i, j in zip(*np.nonzero(cm)):
            ax.text(j, i, f"{values[i, j]:.2f}" if normalize else f"{int(cm[i, j])}", ha="center", va="center",
                    fontsize=7, color="white" if values[i, j] > 0.5 * top else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04,
                 label=bilingual("占真实类别的比例", "fraction of the true class") if normalize else bilingual("计数", "count"))
    fig.tight_layout()
    return fig


def _truth_label(truth, right):
    if right:
        return bilingual(f"真实类别：{truth}（正确）", f"true: {truth}, correct")
    return bilingual(f"真实类别：{truth}（错误）", f"true: {truth}, wrong")


def _topk_names(pred, class_names, k):
    """[(name, prob)] of the k best from a probability vector [C] or an already ranked [(name, prob), ...]."""
    if len(pred) and isinstance(pred[0], (tuple, list)):
        return [(str(name), float(p)) for name, p in pred[:k]]
    probs = np.asarray(pred, dtype=np.float64)
    if class_names is None or probs.ndim != 1 or len(probs) != len(class_names):
        raise ValueError(f"a probability vector needs one class name per class: got probabilities of shape "
                         f"{probs.shape} and {None if class_names is None else len(class_names)} class names")
    order = ranked(probs, k)
    return [(str(class_names[i]), float(probs[i])) for i in order]


def _check_labels(labels, class_names, count):
    """labels (true class indices into class_names, one per image) or None."""
    if labels is None:
        return
    if class_names is None:
        raise ValueError("labels are class indices: pass class_names too")
    if len(labels) != count:
        raise ValueError(f"got {count} images but {len(labels)} labels")
    bad = [int(y) for y in labels if not 0 <= int(y) < len(class_names)]
    if bad:
        raise ValueError(f"labels must be indices in [0, {len(class_names) - 1}], got {bad[:5]}")


def plot_predictions(images, probs_or_topk, class_names=None, labels=None, k=3, cols=4):
    """A grid of images, each titled with its top-k classes and probabilities.

    probs_or_topk: per image a probability vector [C] (an array [N, C] works) or a ranked list of (name, prob)
    as evaluate.predict returns. labels: true class indices into class_names; the true class is written under
    each image, green with "correct" when the top-1 prediction is it, red with "wrong" otherwise.
    """
    if len(images) != len(probs_or_topk):
        raise ValueError(f"got {len(images)} images but {len(probs_or_topk)} predictions")
    if len(images) == 0:
        raise ValueError("plot_predictions needs at least one image")
    _check_labels(labels, class_names, len(images))
    k = check_int(k, "k")
    cols = min(check_int(cols, "cols"), len(images))
    rows = -(-len(images) // cols)
    fig = _new_figure((2.6 * cols, (2.9 + 0.15 * k) * rows), layout="constrained")
    for n, (image, pred) in enumerate(zip(images, probs_or_topk)):
        top = _topk_names(pred, class_names, k)
        ax = fig.add_subplot(rows, cols, n + 1)
        ax.imshow(_as_image(image))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("\n".join(f"{name}  {p:.1%}" for name, p in top), fontsize=8)
        if labels is not None:
            truth = str(class_names[int(labels[n])])
            right = top[0][0] == truth
            ax.set_xlabel(_truth_label(truth, right), fontsize=8, color="green" if right else "red")
            for spine in ax.spines.values():
                spine.set_edgecolor("green" if right else "red")
                spine.set_linewidth(2)
    return fig


# ---- inference: one image, its class probabilities ----

def plot_probability_bars(images, probs_or_topk, class_names=None, labels=None, k=5, titles=None):
    """Each image beside a horizontal bar chart of its k most probable classes, the most probable on top.

    probs_or_topk: per image a probability vector [C] (an array [N, C] works) or a ranked list of (name, prob) as
    evaluate.predict returns. labels: true class indices into class_names; the true class's bar is green and, when
    the top-1 class is another one, that bar is red. titles: one line above each image (what the image is).
    """
    if isinstance(images, np.ndarray) and images.ndim == 3:
        raise ValueError(f"expected a list of images, got one image array of shape {images.shape}: pass [image]")
    if len(images) != len(probs_or_topk):
        raise ValueError(f"got {len(images)} images but {len(probs_or_topk)} predictions")
    if len(images) == 0:
        raise ValueError("plot_probability_bars needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    _check_labels(labels, class_names, len(images))
    k = check_int(k, "k")
    tops = [_topk_names(pred, class_names, k) for pred in probs_or_topk]
    rows = len(images)
    fig = _new_figure((7.5, (1.0 + 0.32 * max(len(top) for top in tops)) * rows + 0.4), layout="constrained")
    grid = fig.add_gridspec(rows, 2, width_ratios=(1, 1.7))
    for n, (image, top) in enumerate(zip(images, tops)):
        ax_image, ax_bars = fig.add_subplot(grid[n, 0]), fig.add_subplot(grid[n, 1])
        ax_image.imshow(_as_image(image))
        ax_image.set_xticks([])
        ax_image.set_yticks([])
        if titles is not None:
            ax_image.set_title(str(titles[n]), fontsize=8)
        names, values = [name for name, _ in top], [p for _, p in top]
        colors = ["tab:blue"] * len(top)
        if labels is not None:
            truth = str(class_names[int(labels[n])])
            right = names[0] == truth
            colors = ["green" if name == truth else "red" if i == 0 and not right else "tab:blue"
                      for i, name in enumerate(names)]
            ax_image.set_xlabel(_truth_label(truth, right), fontsize=8, color="green" if right else "red")
        positions = np.arange(len(top))
        ax_bars.barh(positions, values, color=colors)
        ax_bars.set_yticks(positions, names, fontsize=8)
        ax_bars.invert_yaxis()                                   # the most probable class on top
        ax_bars.set_xlim(0, 1.15)
        for y, p in zip(positions, values):
            ax_bars.text(p + 0.01, y, f"{p:.1%}", va="center", fontsize=8)
        ax_bars.set_xlabel(bilingual(f"概率（前 {len(top)} 名）", f"probability, top {len(top)}"), fontsize=8)
        ax_bars.tick_params(axis="x", labelsize=7)
    return fig
