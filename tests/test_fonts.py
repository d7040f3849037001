"""Chinese labels in figures: drawn with a font that has the glyphs, or left out where no such font exists."""
import warnings

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vit_ms import fonts  # noqa: E402


@pytest.fixture
def restore_rc():
    saved = dict(matplotlib.rcParams)
    yield
    matplotlib.rcParams.update(saved)


def _draw(title):
    fig, ax = plt.subplots()
    ax.set_title(title)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph is a UserWarning
        fig.canvas.draw()
    plt.close(fig)


def test_installed_requirements_provide_a_chinese_font():
    assert fonts.chinese_font() is not None, "no Chinese font: mplfonts (a requirement) is missing or moved its file"


def test_chinese_label_draws_without_missing_glyphs(restore_rc):
    fonts.use_chinese_font()
    label = fonts.bilingual("位置编码的余弦相似度", "cosine similarity")
    assert label == "位置编码的余弦相似度 (cosine similarity)"
    _draw(label + " −0.5")


def test_without_the_font_chinese_glyphs_are_missing(restore_rc):
    # the check above can fail: the default font alone lacks the glyphs
    matplotlib.rcParams["font.family"] = ["DejaVu Sans"]
    with pytest.raises(UserWarning, match="missing from font"):
        _draw("位置编码")


def test_labels_are_english_only_without_a_chinese_font(monkeypatch):
    monkeypatch.setattr(fonts, "chinese_font", lambda: None)
    assert fonts.bilingual("位置编码", "position embedding") == "position embedding"
    assert fonts.use_chinese_font() is None
