"""Chinese in figures: a font with the glyphs, and labels in both languages.

matplotlib's own fonts have no Chinese glyphs (they would be drawn as empty boxes, with a warning per glyph). The
first of these is used: a Chinese font the system already has, else the Noto Sans CJK SC that the ``mplfonts``
package ships (a requirement of vit_ms). Latin text stays in matplotlib's default font (a fallback list, matplotlib
3.6+). Without any Chinese font, labels are English only.
"""
import importlib.util
from functools import lru_cache
from pathlib import Path

SYSTEM_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei",
                   "PingFang SC")
MPLFONTS_FILE = "NotoSansCJKsc-Regular.otf"
LATIN_FAMILY = "DejaVu Sans"  # matplotlib's default, shipped with it


def _mplfonts_file():
    spec = importlib.util.find_spec("mplfonts")  # found, not imported: importing it changes matplotlib's settings
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "fonts" / MPLFONTS_FILE
    return path if path.is_file() else None


@lru_cache(maxsize=None)
def chinese_font():
    """The family name of a font with Chinese glyphs, registered with matplotlib; None if there is none."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    for family in SYSTEM_FAMILIES:
        if family in installed:
            return family
    path = _mplfonts_file()
    if path is None:
        return None
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def use_chinese_font():
    """Let matplotlib draw Chinese: the Chinese font behind the default one. Returns its family name, or None.

    Call it before making a figure: a figure's axes keep the fonts of the moment they were made."""
    import matplotlib

    family = chinese_font()
    if family is not None and matplotlib.rcParams["font.family"][-1:] != [family]:
        # named families, not "sans-serif": matplotlib falls back glyph by glyph only across the names listed
        matplotlib.rcParams["font.family"] = [LATIN_FAMILY, family]
    return family


def bilingual(zh, en, sep=" "):
    """A label "中文 (English)" when Chinese can be drawn, else the English alone; ``sep="\n"`` puts the English on a
    line of its own."""
    return f"{zh}{sep}({en})" if chinese_font() else en
