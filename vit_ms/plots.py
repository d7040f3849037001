"""Figures for the course (matplotlib). Every function returns the Figure; none calls plt.show().

Text in figures is English: matplotlib's default fonts have no Chinese glyphs.
"""
import numpy as np


def _figure(figsize):
    import matplotlib.pyplot as plt
    return plt.figure(figsize=figsize)


def _as_image(image):
    """HWC uint8/float array, PIL image or path -> HWC array for imshow."""
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        from PIL import Image
        image = Image.open(image).convert("RGB")
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an image [H, W, 3] (or a path / PIL image), got shape {array.shape}")
    return array


def plot_patch_grid(image, patch_size=16, show_index=False, ax=None):
    """The image with the patch grid drawn over it (what PatchEmbed cuts the image into)."""
    image = _as_image(image)
    h, w = image.shape[:2]
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_size={patch_size}")
    fig = ax.figure if ax is not None else _figure((5, 5))
    ax = ax or fig.add_subplot(1, 1, 1)
    ax.imshow(image)
    for x in range(0, w + 1, patch_size):
        ax.axvline(x - 0.5, color="white", lw=0.8)
    for y in range(0, h + 1, patch_size):
        ax.axhline(y - 0.5, color="white", lw=0.8)
    if show_index:
        for i in range(h // patch_size):
            for j in range(w // patch_size):
                ax.text(j * patch_size + patch_size / 2, i * patch_size + patch_size / 2, str(i * (w // patch_size) + j),
                        color="yellow", ha="center", va="center", fontsize=6)
    ax.set_title(f"{h // patch_size} x {w // patch_size} patches of {patch_size} x {patch_size} pixels")
    ax.axis("off")
    return fig


def plot_patches(image, patch_size=16, max_patches=None):
    """The patches laid out as the sequence the transformer reads (row by row)."""
    image = _as_image(image)
    gh, gw = image.shape[0] // patch_size, image.shape[1] // patch_size
    n = gh * gw if max_patches is None else min(max_patches, gh * gw)
    cols = gw
    rows = -(-n // cols)
    fig = _figure((cols * 0.45, rows * 0.45 + 0.4))
    for k in range(n):
        i, j = divmod(k, gw)
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(image[i * patch_size:(i + 1) * patch_size, j * patch_size:(j + 1) * patch_size])
        ax.axis("off")
    fig.suptitle(f"{n} patches in sequence order, each {patch_size}x{patch_size}x{image.shape[2]}")
    return fig


def similarity_mosaic(sim, gap=1):
    """Tile sim [gh, gw, gh, gw] into one 2-D array: tile (i, j) is sim[i, j]; NaN lines separate the tiles."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 4:
        raise ValueError(f"expected similarities [gh, gw, gh, gw], got shape {sim.shape}")
    gh, gw = sim.shape[:2]
    th, tw = sim.shape[2:]
    mosaic = np.full((gh * (th + gap) - gap, gw * (tw + gap) - gap), np.nan)
    for i in range(gh):
        for j in range(gw):
            mosaic[i * (th + gap):i * (th + gap) + th, j * (tw + gap):j * (tw + gap) + tw] = sim[i, j]
    return mosaic


def _mosaic_axes(ax, sim, vmin, vmax, title):
    gh, gw, th, tw = sim.shape
    image = ax.imshow(similarity_mosaic(sim), cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([j * (tw + 1) + tw / 2 - 0.5 for j in range(gw)], [str(j + 1) for j in range(gw)], fontsize=6)
    ax.set_yticks([i * (th + 1) + th / 2 - 0.5 for i in range(gh)], [str(i + 1) for i in range(gh)], fontsize=6)
    ax.set_xlabel("Input patch column")
    ax.set_ylabel("Input patch row")
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title)
    return image


def plot_pos_embed_similarity(sim, title=None):
    """The paper's Figure 7: one small map per patch (its cosine similarity to every patch), one colour bar.

    The colour range is [-1, 1] when the data has negative values, else [0, 1] — the same scale for every tile.
    """
    sim = np.asarray(sim)
    vmin = -1.0 if np.nanmin(sim) < 0 else 0.0
    fig = _figure((6.2, 5.5))
    ax = fig.add_subplot(1, 1, 1)
    image = _mosaic_axes(ax, sim, vmin, 1.0, title or "Position embedding similarity")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="Cosine similarity")
    return fig


def plot_pos_embed_comparison(sims):
    """Side-by-side similarity mosaics ({title: sim}) on one shared colour scale."""
    if not sims:
        raise ValueError("plot_pos_embed_comparison needs at least one {title: similarity} entry")
    vmin = -1.0 if min(np.nanmin(s) for s in sims.values()) < 0 else 0.0
    fig = _figure((5.2 * len(sims) + 0.8, 5))
    axes = [fig.add_subplot(1, len(sims), k + 1) for k in range(len(sims))]
    for ax, (title, sim) in zip(axes, sims.items()):
        image = _mosaic_axes(ax, np.asarray(sim), vmin, 1.0, title)
    fig.colorbar(image, ax=axes, fraction=0.02, pad=0.02, label="Cosine similarity")
    return fig


def attention_rollout(attn_maps):
    """Attention rollout (Abnar & Zuidema, 2020): multiply the per-layer attention, heads averaged, with the
    residual path added (0.5 A + 0.5 I, rows renormalised). attn_maps: list of [heads, T, T] or [1, heads, T, T].
    Returns [T, T]; row 0 is how much the class token draws from each token through the whole network."""
    result = None
    for attn in attn_maps:
        attn = np.asarray(attn, dtype=np.float64)
        if attn.ndim == 4:
            if attn.shape[0] != 1:
                raise ValueError(f"attention rollout takes one image, got a batch of {attn.shape[0]}")
            attn = attn[0]
        if attn.ndim != 3 or attn.shape[1] != attn.shape[2]:
            raise ValueError(f"expected attention maps [heads, T, T], got shape {attn.shape}")
        a = 0.5 * attn.mean(axis=0) + 0.5 * np.eye(attn.shape[-1])
        a /= a.sum(axis=-1, keepdims=True)
        result = a if result is None else a @ result
    if result is None:
        raise ValueError("attention_rollout needs at least one layer of attention maps")
    return result


def plot_attention_maps(image, attn_maps, layers=None):
    """How the class token attends to the patches: chosen layers (mean over heads) and the rollout over all."""
    image = _as_image(image)
    maps = [np.asarray(a)[0] if np.asarray(a).ndim == 4 else np.asarray(a) for a in attn_maps]
    tokens = maps[0].shape[-1] - 1
    side = int(round(np.sqrt(tokens)))
    if side * side != tokens:
        raise ValueError(f"expected 1 + a square number of tokens, got {tokens + 1}")
    depth = len(maps)
    layers = layers if layers is not None else sorted({0, depth // 2, depth - 1})
    panels = [(f"layer {i + 1}", maps[i].mean(axis=0)[0, 1:]) for i in layers]
    panels.append(("rollout (all layers)", attention_rollout(maps)[0, 1:]))
    fig = _figure((2.6 * (len(panels) + 1), 2.9))
    ax = fig.add_subplot(1, len(panels) + 1, 1)
    ax.imshow(image)
    ax.set_title("input")
    ax.axis("off")
    h, w = image.shape[:2]
    for k, (title, weights) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels) + 1, k + 2)
        ax.imshow(image)
        ax.imshow(weights.reshape(side, side), cmap="inferno", alpha=0.6, extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                  interpolation="bilinear")
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle("Class-token attention to patches")
    return fig


def plot_training_curves(history):
    """Loss, accuracy and learning rate per epoch from train()'s history (list of per-epoch dicts)."""
    if not history:
        raise ValueError("plot_training_curves needs a non-empty history (one dict per epoch)")
    epochs = [h["epoch"] for h in history]
    fig = _figure((13, 3.6))
    ax = fig.add_subplot(1, 3, 1)
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    if "val_loss" in history[0]:
        ax.plot(epochs, [h["val_loss"] for h in history], "s-", label="val")
    ax.set(title="Loss", xlabel="epoch")
    ax.legend()
    ax = fig.add_subplot(1, 3, 2)
    for key, label in (("val_top1", "val top-1"), ("val_top5", "val top-5")):
        if key in history[0]:
            ax.plot(epochs, [h[key] for h in history], "o-", label=label)
    ax.set(title="Accuracy", xlabel="epoch", ylim=(0, 1.02))
    ax.legend()
    ax = fig.add_subplot(1, 3, 3)
    ax.plot(epochs, [h["lr"] for h in history], "o-")
    ax.set(title="Learning rate (end of epoch)", xlabel="epoch")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm, class_names, normalize=True):
    """Rows: true class, columns: predicted class; normalised per row (recall) by default."""
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(f"expected a square confusion matrix matching {len(class_names)} class names, "
                         f"got shape {cm.shape}")
    values = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    n = len(class_names)
    fig = _figure((max(4, 0.5 * n + 2), max(3.5, 0.5 * n + 1.5)))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(n), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set(xlabel="Predicted", ylabel="True", title="Confusion matrix" + (" (row-normalised)" if normalize else ""))
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, f"{values[i, j]:.2f}" if normalize else f"{int(cm[i, j])}", ha="center",
                            va="center", fontsize=7, color="white" if values[i, j] > 0.5 * values.max() else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_predictions(images, topk, class_names=None, labels=None, k=3, cols=4):
    """Images with their top-k predictions. topk: per image a list of (name, prob) (as predict() returns) or a
    probability vector; labels: true class indices (title green when top-1 is right, red otherwise)."""
    if len(images) != len(topk):
        raise ValueError(f"got {len(images)} images but {len(topk)} predictions")
    rows = -(-len(images) // cols)
    fig = _figure((3 * cols, 3.2 * rows))
    for n, (image, pred) in enumerate(zip(images, topk)):
        if not isinstance(pred[0], tuple):  # a probability vector
            order = np.argsort(-np.asarray(pred), kind="stable")[:k]
            pred = [(class_names[i], float(pred[i])) for i in order]
        ax = fig.add_subplot(rows, cols, n + 1)
        ax.imshow(_as_image(image))
        ax.axis("off")
        text = "\n".join(f"{name} {p:.0%}" for name, p in pred[:k])
        color = "black"
        if labels is not None:
            truth = class_names[labels[n]]
            color = "green" if pred[0][0] == truth else "red"
            text = f"true: {truth}\n" + text
        ax.set_title(text, fontsize=8, color=color)
    fig.tight_layout()
    return fig
