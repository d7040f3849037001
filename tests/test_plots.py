"""Figures: what each one draws (axes, image data, texts), the tiling helpers, attention rollout, PNG output."""
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from vit_ms import fonts  # noqa: E402

from vit_ms.plots import (attention_rollout, patch_sequence_mosaic, plot_attention_maps,  # noqa: E402
                          plot_confusion_matrix, plot_patch_grid, plot_patches, plot_pos_embed_comparison,
                          plot_pos_embed_similarity, plot_predictions, plot_training_curves, similarity_color_range,
                          similarity_mosaic, filter_mosaic, plot_architecture, plot_figure7)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(autouse=True)
def _english_labels(request, monkeypatch):
    """Labels as on a machine with no Chinese font (English only), unless the test asks for chinese_labels."""
    if "chinese_labels" not in request.fixturenames:
        monkeypatch.setattr(fonts, "chinese_font", lambda: None)


@pytest.fixture
def chinese_labels():
    saved = dict(matplotlib.rcParams)
    assert fonts.chinese_font() is not None
    yield
    matplotlib.rcParams.update(saved)


def patch_image(grid=4, patch=8):
    """uint8 [grid*patch, grid*patch, 3] where every pixel of patch k (row-major) has the value 10 * k."""
    values = (10 * np.arange(grid * grid, dtype=np.uint8)).reshape(grid, grid)
    return np.repeat(np.repeat(values, patch, axis=0), patch, axis=1)[:, :, None].repeat(3, axis=2)


def random_sim(grid, seed=0):
    pe = np.random.default_rng(seed).normal(size=(grid * grid, 16))
    pe /= np.linalg.norm(pe, axis=1, keepdims=True)
    return (pe @ pe.T).reshape(grid, grid, grid, grid)


def softmax_attention(blocks, heads, tokens, seed=0):
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(blocks):
        scores = rng.normal(size=(1, heads, tokens, tokens)) * 2
        e = np.exp(scores - scores.max(-1, keepdims=True))
        maps.append(e / e.sum(-1, keepdims=True))
    return maps


def texts_in(fig):
    """Every string drawn in the figure (tick labels included once it has been drawn); the minus sign of tick
    labels (U+2212, in every default font) counts as "-"."""
    return [t.get_text().replace("\u2212", "-") for t in fig.findobj(Text) if t.get_text()]


# ---- tiling helpers ----

def test_similarity_mosaic_puts_each_map_at_its_tile():
    sim = np.random.default_rng(0).normal(size=(3, 4, 5, 2))  # all sizes different: a swapped axis would show
    mosaic = similarity_mosaic(sim)
    assert mosaic.shape == (15, 8)
    for i in range(3):
        for j in range(4):
            np.testing.assert_array_equal(mosaic[i * 5:(i + 1) * 5, j * 2:(j + 1) * 2], sim[i, j])
    with pytest.raises(ValueError, match=r"\[gh, gw, gh, gw\]"):
        similarity_mosaic(sim[0])


def test_patch_sequence_mosaic_orders_patches_row_by_row():
    image = patch_image(grid=4, patch=8)
    mosaic = patch_sequence_mosaic(image, 8, num_patches=6, cols=4, gap=2)
    assert mosaic.shape == (2 * 10 - 2, 4 * 10 - 2, 3) and mosaic.dtype == np.uint8
    for k in range(6):
        r, c = divmod(k, 4)
        tile = mosaic[r * 10:r * 10 + 8, c * 10:c * 10 + 8]
        assert (tile == 10 * k).all(), f"patch {k}"
    assert (mosaic[8:10] == 255).all() and (mosaic[:, 8:10] == 255).all()  # white gaps
    assert (mosaic[10:, 20:] == 255).all()  # slots after the 6th patch stay empty


def test_similarity_color_range():
    assert similarity_color_range([np.full((2, 2, 2, 2), 0.66)]) == (0.6, 1.0)
    assert similarity_color_range([np.full((2, 2, 2, 2), 0.7), np.full((1, 1, 1, 1), -0.35)]) == (-0.4, 1.0)
    assert similarity_color_range([np.ones((2, 2, 2, 2))]) == (0.9, 1.0)  # never an empty range
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        similarity_color_range([np.full((2, 2, 2, 2), 1.5)])


# ---- attention rollout ----

def test_rollout_of_identity_attention_is_the_identity():
    eye = np.broadcast_to(np.eye(5), (3, 5, 5))
    np.testing.assert_allclose(attention_rollout([eye] * 4), np.eye(5))


def test_rollout_by_hand_two_tokens():
    # block 1: both tokens attend to token 0; block 2: both attend to token 1 (two heads that average to it)
    a1 = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    a2 = np.array([[[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])
    # with the residual: A1' = [[1, 0], [.5, .5]], A2' = [[.5, .5], [0, 1]]; rollout = A2' @ A1'
    np.testing.assert_allclose(attention_rollout([a1, a2]), [[0.75, 0.25], [0.5, 0.5]])
    np.testing.assert_allclose(attention_rollout([a1]), [[1.0, 0.0], [0.5, 0.5]])
    # heads are averaged: heads "all to 0" and "all to 1" make uniform attention
    np.testing.assert_allclose(attention_rollout([np.concatenate([a1, a2[:1]])]), [[0.75, 0.25], [0.25, 0.75]])


def test_rollout_rows_sum_to_one_and_batch_of_one_is_accepted():
    maps = softmax_attention(blocks=6, heads=3, tokens=17)
    rollout = attention_rollout(maps)  # [1, heads, T, T] each
    assert rollout.shape == (17, 17)
    np.testing.assert_allclose(rollout.sum(axis=1), 1.0)
    np.testing.assert_allclose(attention_rollout([m[0] for m in maps]), rollout)


@pytest.mark.parametrize("maps, match", [
    ([], "non-empty list"),
    ([np.ones((2, 2, 5, 5)) / 5], "batch of 2"),
    ([np.ones((2, 5, 4)) / 4], r"\[heads, T, T\]"),
    ([np.ones((2, 5, 5)) / 5, np.ones((2, 6, 6)) / 6], "block 1 has 6 tokens but block 0 has 5"),
    ([np.ones((2, 5, 5))], "softmax weights"),
])
def test_rollout_rejects_bad_maps(maps, match):
    with pytest.raises(ValueError, match=match):
        attention_rollout(maps)


# ---- figures ----

def test_patch_grid_lines_and_indices():
    image = patch_image(grid=4, patch=8)
    fig = plot_patch_grid(image, patch_size=8, show_index=True)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), image)
    vertical, horizontal = ax.collections
    assert len(vertical.get_segments()) == 5 and len(horizontal.get_segments()) == 5  # 4 patches need 5 lines
    numbers = {t.get_text(): t.get_position() for t in ax.texts}
    assert sorted(numbers, key=int) == [str(k) for k in range(16)]
    assert numbers["6"] == (2 * 8 + 3.5, 1 * 8 + 3.5)  # patch 6 = row 1, column 2, label at its centre
    assert ax.get_xlim() == (-0.5, 31.5)  # the lines do not widen the view

    _, axes = plt.subplots(1, 2)
    assert plot_patch_grid(image, 8, ax=axes[1]) is axes[1].figure and len(axes[1].get_images()) == 1


def test_plot_patches_shows_the_sequence():
    image = patch_image(grid=4, patch=8)
    fig = plot_patches(image, patch_size=8)
    (ax,) = fig.axes
    (shown,) = ax.get_images()
    np.testing.assert_array_equal(shown.get_array(), patch_sequence_mosaic(image, 8, 16, cols=8, gap=1))
    assert sorted((t.get_text() for t in ax.texts), key=int) == [str(k) for k in range(16)]
    fig = plot_patches(image, patch_size=8, max_patches=5)
    assert len(fig.axes[0].texts) == 5 and "first 5 of 16" in fig.axes[0].get_title()


@pytest.mark.parametrize("image, match", [
    (np.zeros((30, 32, 3), np.uint8), "not divisible by patch_size=8"),
    (np.zeros((3, 32, 32), np.uint8), "channels first"),
    (np.full((32, 32, 3), 2.5, np.float32), "float image must lie in"),
])
def test_bad_images_are_rejected(image, match):
    with pytest.raises(ValueError, match=match):
        plot_patch_grid(image, 8)


@pytest.mark.parametrize("grid", [8, 14, 24])
def test_similarity_figure_is_one_mosaic_image_and_fast(grid, tmp_path):
    sim = random_sim(grid)
    start = time.perf_counter()
    fig = plot_pos_embed_similarity(sim, title="test")
    fig.savefig(tmp_path / "sim.png", dpi=100)
    assert time.perf_counter() - start < 3.0
    assert len(fig.axes) == 2  # the mosaic and its colour bar
    ax = fig.axes[0]
    (mosaic,) = ax.get_images()
    np.testing.assert_allclose(mosaic.get_array(), similarity_mosaic(sim))
    assert mosaic.get_clim() == similarity_color_range([sim])
    assert ax.get_xlabel() == "input patch column" and ax.get_ylabel() == "input patch row"
    assert fig.axes[1].get_ylabel() == "cosine similarity"
    assert len(ax.collections[0].get_segments()) == grid - 1  # separators between the tiles


def test_comparison_gives_each_panel_its_own_colour_scale_and_bar():
    sims = {"a": random_sim(4), "b": np.clip(random_sim(6, seed=1), 0.2, 1.0), "c (4x4)": random_sim(4, seed=2)}
    fig = plot_pos_embed_comparison(sims)
    mosaics = [ax for ax in fig.axes if ax.get_images() and ax.get_title()]
    assert len(mosaics) == 3 and len(fig.axes) == 6          # three mosaics, three colour bars
    for ax, sim in zip(mosaics, sims.values()):
        assert ax.get_images()[0].get_clim() == similarity_color_range([sim])
    assert mosaics[1].get_images()[0].get_clim()[0] == pytest.approx(0.2)   # not the others' lower minimum
    assert [ax.get_title() for ax in mosaics] == ["a (4x4)", "b (6x6)", "c (4x4)"]
    np.testing.assert_allclose(mosaics[1].get_images()[0].get_array(), similarity_mosaic(sims["b"]))
    with pytest.raises(ValueError, match="non-empty dict"):
        plot_pos_embed_comparison({})
    with pytest.raises(ValueError, match=r"\[gh, gw, gh, gw\]"):
        plot_pos_embed_comparison({"bad": np.zeros((4, 4, 2, 2))})


def test_sincos_panel_shows_its_structure_beside_a_random_one():
    """The 2-D sin-cos similarities span about [0.7, 1]: on its own scale they use the whole colour range."""
    from vit_ms import pos_embed_similarity, sincos_2d_pos_embed

    sims = {"random": random_sim(8), "sin-cos": pos_embed_similarity(sincos_2d_pos_embed(128, 8))}
    fig = plot_pos_embed_comparison(sims)
    image = fig.axes[2].get_images()[0]
    normalised = image.norm(image.get_array())
    assert normalised.min() < 0.35 and normalised.max() == pytest.approx(1.0)


# ---- Figure 7 ----

def test_filter_mosaic_rescales_each_component_and_places_it():
    filters = np.random.default_rng(0).normal(size=(5, 3, 3, 3)) * np.arange(1, 6)[:, None, None, None]
    mosaic = filter_mosaic(filters, cols=2, gap=1)
    assert mosaic.shape == (3 * 4 - 1, 2 * 4 - 1, 3)
    for k in range(5):
        r, c = divmod(k, 2)
        tile = mosaic[4 * r:4 * r + 3, 4 * c:4 * c + 3]
        assert tile.min() == 0.0 and tile.max() == 1.0                     # its own range, whatever the scale
        np.testing.assert_allclose(tile, (filters[k] - filters[k].min()) / np.ptp(filters[k]))
    assert (mosaic[3] == 1).all() and (mosaic[8:, 4:] == 1).all()           # gaps and the empty sixth tile: white
    with pytest.raises(ValueError, match=r"\[n, P, P, C\]"):
        filter_mosaic(np.zeros((4, 3, 3, 2)))


def test_figure7_draws_filters_similarity_and_one_dot_per_head():
    import vit_ms
    from vit_ms.model import VisionTransformer

    model = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=4, num_classes=5,
                              cpu_kernels=False)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    fig = plot_figure7({"a": model}, x, n_filters=6)
    left, centre, right, _ = fig.axes                                     # the last is the colour bar
    filters, _ = vit_ms.embedding_filters(model, n=6)
    np.testing.assert_allclose(left.get_images()[0].get_array(), filter_mosaic(filters))
    np.testing.assert_allclose(centre.get_images()[0].get_array(),
                               similarity_mosaic(vit_ms.pos_embed_similarity(model)))
    distances = vit_ms.attention_distance(model, x)
    dots = np.concatenate([c.get_offsets() for c in right.collections])
    assert len(dots) == 3 * 4                                              # depth x heads
    np.testing.assert_allclose(dots[:, 1], distances.reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(dots[:, 0], np.repeat([1, 2, 3], 4))
    uniform = right.get_lines()[0].get_ydata()
    np.testing.assert_allclose(uniform, vit_ms.uniform_attention_distance(4, 8))
    assert right.get_ylabel() == "mean attention distance, px"
    assert "uniform attention, 16.1 px" in texts_in(fig)
    given = plot_figure7(model, x, n_filters=6, distances={"": distances + 1.0})   # measured elsewhere: drawn as given
    np.testing.assert_allclose(np.concatenate([c.get_offsets() for c in given.axes[2].collections])[:, 1],
                               distances.reshape(-1) + 1.0)
    with pytest.raises(ValueError, match=r"\[depth, heads\] = \[3, 4\], got shape \(4, 3\)"):
        plot_figure7(model, x, distances={"": np.zeros((4, 3))})


def test_architecture_chart_has_one_box_per_stage_with_its_shape():
    import vit_ms
    from vit_ms.model import VisionTransformer

    model = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=4, num_classes=5,
                              cpu_kernels=False)
    fig = plot_architecture(vit_ms.summary(model, (2, 3, 32, 32)))
    boxes = [t for t in texts_in(fig) if "[" in t]
    assert [b.split("\n")[0] for b in boxes] == ["input image", "patch embedding", "+ class token",
                                                  "+ position embedding", "encoder block x 3", "final LayerNorm",
                                                  "class token", "classification head"]
    assert boxes[1].split("\n")[1].startswith("[2, 16, 32]") and boxes[3].split("\n")[1].startswith("[2, 17, 32]")
    assert boxes[-1] == f"classification head\n[2, 5]   {32 * 5 + 5:,} parameters"
    assert f"{vit_ms.count_params(model.blocks):,} parameters" in boxes[4]
    arrows = [t for t in fig.axes[0].texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == len(boxes) - 1                                   # one arrow between each two boxes
    with pytest.raises(TypeError, match="what vit_ms.summary returns"):
        plot_architecture("a table")


def test_attention_maps_show_the_class_token_row():
    maps = softmax_attention(blocks=8, heads=2, tokens=17)  # 4 x 4 patches + class token
    image = patch_image(grid=4, patch=8)
    fig = plot_attention_maps(image, maps)
    assert len(fig.axes) == 1 + 3 + 1  # input, blocks 0, 4, 7, rollout
    assert [ax.get_title() for ax in fig.axes[1:]] == ["block 0", "block 4", "block 7, last", "rollout, 8 blocks"]
    for ax, block in zip(fig.axes[1:4], (0, 4, 7)):
        background, heat = ax.get_images()
        np.testing.assert_allclose(heat.get_array(), maps[block][0].mean(axis=0)[0, 1:].reshape(4, 4))
        assert heat.get_extent() == [-0.5, 31.5, 31.5, -0.5]  # stretched over the whole image
    np.testing.assert_allclose(fig.axes[4].get_images()[1].get_array(), attention_rollout(maps)[0, 1:].reshape(4, 4))
    assert len(plot_attention_maps(image, maps, layers=[2]).axes) == 3
    with pytest.raises(ValueError, match=r"block indices in \[0, 7\]"):
        plot_attention_maps(image, maps, layers=[8])
    wide = softmax_attention(blocks=2, heads=1, tokens=1 + 2 * 4)
    with pytest.raises(ValueError, match="grid_size"):
        plot_attention_maps(image, wide)
    assert len(plot_attention_maps(image[:16], wide, grid_size=(2, 4)).axes) == 4


def test_training_curves():
    history = [dict(epoch=e, train_loss=2.0 / e, val_loss=2.5 / e, val_top1=0.1 * e, val_top5=0.2 * e,
                    lr=1e-3 / e) for e in (1, 2, 3)]
    fig = plot_training_curves(history)
    loss, accuracy, lr = fig.axes
    assert [line.get_label() for line in loss.lines] == ["train", "val"]
    np.testing.assert_allclose(loss.lines[1].get_ydata(), [2.5, 1.25, 2.5 / 3])
    np.testing.assert_allclose(accuracy.lines[1].get_ydata(), [0.2, 0.4, 0.6])
    np.testing.assert_allclose(lr.lines[0].get_xdata(), [1, 2, 3])
    minimal = plot_training_curves([dict(epoch=1, train_loss=1.0), dict(epoch=2, train_loss=0.5)])
    assert len(minimal.axes) == 1  # nothing to draw in the accuracy and lr panels
    with pytest.raises(ValueError, match="non-empty list"):
        plot_training_curves([])
    with pytest.raises(ValueError, match=r"missing: \['train_loss'\]"):
        plot_training_curves([dict(epoch=1, val_top1=0.5)])


def test_training_curves_step_schedule():
    """The schedule train() records (warm-up, then cosine) drawn step by step, on the epoch axis."""
    history = [dict(epoch=e, train_loss=1.0 / e) for e in (1, 2, 3)]
    schedule = [1e-3 * (k + 1) / 4 for k in range(4)] + [1e-3] * 8
    lr = plot_training_curves(history, schedule, steps_per_epoch=4).axes[-1]
    np.testing.assert_allclose(lr.lines[0].get_xdata(), (np.arange(12) + 1) / 4)
    np.testing.assert_allclose(lr.lines[0].get_ydata(), schedule)
    assert "every step" in lr.get_title()
    with pytest.raises(ValueError, match="steps_per_epoch"):
        plot_training_curves(history, schedule)


def test_confusion_matrix_figure():
    cm = np.array([[2, 0, 0], [1, 3, 0], [0, 0, 0]])
    fig = plot_confusion_matrix(cm, ["cat", "dog", "fox"])
    assert len(fig.axes) == 2
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array(), [[1, 0, 0], [0.25, 0.75, 0], [0, 0, 0]])
    assert {t.get_text() for t in fig.axes[0].texts} == {"1.00", "0.25", "0.75"}
    counts = plot_confusion_matrix(cm, ["cat", "dog", "fox"], normalize=False)
    np.testing.assert_array_equal(counts.axes[0].get_images()[0].get_array(), cm)
    with pytest.raises(ValueError, match=r"\[2, 2\] for 2 class names, got shape \(3, 3\)"):
        plot_confusion_matrix(cm, ["cat", "dog"])


def test_predictions_titles_and_colours():
    names = ["cat", "dog", "fox", "owl"]
    probs = np.array([[0.1, 0.6, 0.2, 0.1],
                      [0.5, 0.1, 0.1, 0.3]])
    images = [patch_image(2, 8), patch_image(2, 8)]
    fig = plot_predictions(images, probs, names, labels=[1, 3], k=2)
    first, second = fig.axes
    assert first.get_title() == "dog  60.0%\nfox  20.0%"
    assert second.get_title() == "cat  50.0%\nowl  30.0%"
    assert first.xaxis.label.get_text() == "true: dog, correct" and first.xaxis.label.get_color() == "green"
    assert second.xaxis.label.get_text() == "true: owl, wrong" and second.xaxis.label.get_color() == "red"
    ranked = [[("dog", 0.6), ("fox", 0.2), ("cat", 0.1)], [("cat", 0.5), ("owl", 0.3), ("dog", 0.1)]]
    same = plot_predictions(images, ranked, names, labels=[1, 3], k=2)  # evaluate.predict's format
    assert [ax.get_title() for ax in same.axes] == [first.get_title(), second.get_title()]
    assert plot_predictions(images, probs, names, k=9).axes[0].get_title().count("\n") == 3  # k clipped to 4
    with pytest.raises(ValueError, match="2 images but 1 predictions"):
        plot_predictions(images, probs[:1], names)
    with pytest.raises(ValueError, match=r"indices in \[0, 3\], got \[4\]"):
        plot_predictions(images, probs, names, labels=[1, 4])
    with pytest.raises(ValueError, match="one class name per class"):
        plot_predictions(images, probs, names[:3])


def every_figure():
    from vit_ms.model import VisionTransformer

    image = patch_image(grid=4, patch=8)
    history = [dict(epoch=1, train_loss=1.0, val_loss=1.1, val_top1=0.5, val_top5=0.9, lr=1e-3)]
    figures = {
        "grid": plot_patch_grid(image, 8, show_index=True),
        "patches": plot_patches(image, 8),
        "similarity": plot_pos_embed_similarity(random_sim(4)),
        "comparison": plot_pos_embed_comparison({"a": random_sim(4), "b": random_sim(4, seed=3)}),
        "attention": plot_attention_maps(image, softmax_attention(blocks=3, heads=2, tokens=17)),
        "curves": plot_training_curves(history),
        "confusion": plot_confusion_matrix(np.eye(3, dtype=int), ["a", "b", "c"]),
        "predictions": plot_predictions([image], np.array([[0.2, 0.8]]), ["x", "y"], labels=[1]),
        "figure7": plot_figure7(VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                                                  num_classes=3, cpu_kernels=False),
                                np.zeros((1, 3, 32, 32), np.float32), n_filters=4),
    }
    return figures


def test_without_a_chinese_font_every_figure_saves_as_png_with_ascii_text_only(tmp_path):
    for name, fig in every_figure().items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=60)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        # matplotlib's default font has no Chinese glyphs: without a Chinese font the figures must not need any
        assert all(text.isascii() for text in texts_in(fig)), (name, [t for t in texts_in(fig) if not t.isascii()])


def test_with_a_chinese_font_figures_label_in_chinese_and_english_and_miss_no_glyph(tmp_path, chinese_labels):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns (UserWarning) for every glyph its fonts lack
        figures = every_figure()
        for name, fig in figures.items():
            fig.savefig(tmp_path / f"{name}.png", dpi=60)
    for name in ("grid", "patches", "similarity", "attention", "curves", "confusion", "predictions"):
        texts = texts_in(figures[name])
        assert any(not text.isascii() for text in texts), (name, texts)  # Chinese labels
    curves = figures["curves"].axes[0]
    assert curves.get_title() == "损失 (loss)" and curves.get_ylabel() == "交叉熵 (cross-entropy)"


def test_probability_bars_draw_each_images_top_k_highest_first_and_mark_the_truth(tmp_path):
    from matplotlib.patches import Rectangle

    from vit_ms.plots import plot_probability_bars

    names = ["cat", "dog", "fox", "owl"]
    probs = np.array([[0.1, 0.6, 0.2, 0.1],
                      [0.5, 0.1, 0.1, 0.3]])
    images = [patch_image(2, 8), patch_image(2, 8)]
    fig = plot_probability_bars(images, probs, names, labels=[1, 3], k=3, titles=["first", "second"])
    image_ax, bars_ax, image_ax2, bars_ax2 = fig.axes
    fig.canvas.draw()

    def bars(ax):
        return [(tick.get_text(), round(patch.get_width(), 6), patch.get_facecolor()[:3])
                for tick, patch in zip(ax.get_yticklabels(), sorted(
                    (p for p in ax.patches if isinstance(p, Rectangle)), key=lambda p: p.get_y()))]

    green, red, blue = (0.0, 0.502, 0.0), (1.0, 0.0, 0.0), (0.122, 0.467, 0.706)
    # inverted y axis: the first tick (top) is the most probable class; tick labels read top to bottom
    assert bars_ax.yaxis_inverted() and bars_ax2.yaxis_inverted()
    got = [(name, width, tuple(round(c, 3) for c in color)) for name, width, color in bars(bars_ax)]
    assert got == [("dog", 0.6, green), ("fox", 0.2, blue), ("cat", 0.1, blue)]
    got2 = [(name, width, tuple(round(c, 3) for c in color)) for name, width, color in bars(bars_ax2)]
    assert got2 == [("cat", 0.5, red), ("owl", 0.3, green), ("dog", 0.1, blue)]  # wrong top-1 red, truth green
    assert image_ax.get_title() == "first" and image_ax.xaxis.label.get_text() == "true: dog, correct"
    assert image_ax2.xaxis.label.get_text() == "true: owl, wrong" and image_ax2.xaxis.label.get_color() == "red"
    assert "60.0%" in texts_in(fig) and "30.0%" in texts_in(fig)
    assert np.array_equal(image_ax.images[0].get_array(), patch_image(2, 8))

    ranked = [[("dog", 0.6), ("fox", 0.2), ("cat", 0.1)], [("cat", 0.5), ("owl", 0.3), ("dog", 0.1)]]
    same = plot_probability_bars(images, ranked, names, labels=[1, 3], k=3)  # evaluate.predict's format
    assert [t.get_text() for t in same.axes[1].get_yticklabels()] == ["dog", "fox", "cat"]
    assert len(plot_probability_bars(images[:1], probs[:1], names, k=9).axes[1].patches) == 4  # k clipped to 4

    path = tmp_path / "bars.png"
    fig.savefig(path, dpi=60)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(text.isascii() for text in texts_in(fig))


@pytest.mark.parametrize("call, error, message", [
    (lambda f, im, p, n: f(im[0], p[:1], n), ValueError, r"one image array of shape \(16, 16, 3\): pass \[image\]"),
    (lambda f, im, p, n: f(im, p[:1], n), ValueError, "2 images but 1 predictions"),
    (lambda f, im, p, n: f([], [], n), ValueError, "needs at least one image"),
    (lambda f, im, p, n: f(im, p, n, labels=[1, 4]), ValueError, r"indices in \[0, 3\], got \[4\]"),
    (lambda f, im, p, n: f(im, p, None, labels=[1, 2]), ValueError, "pass class_names too"),
    (lambda f, im, p, n: f(im, p, n[:3]), ValueError, "one class name per class"),
    (lambda f, im, p, n: f(im, p, n, titles=["one"]), ValueError, "2 images but 1 titles"),
    (lambda f, im, p, n: f(im, p, n, k=0), ValueError, "k must be a positive integer, got 0"),
])
def test_probability_bars_refuse_inputs_that_do_not_match(call, error, message):
    from vit_ms.plots import plot_probability_bars

    images = [patch_image(2, 8), patch_image(2, 8)]
    with pytest.raises(error, match=message):
        call(plot_probability_bars, images, np.array([[0.1, 0.6, 0.2, 0.1], [0.5, 0.1, 0.1, 0.3]]),
             ["cat", "dog", "fox", "owl"])
