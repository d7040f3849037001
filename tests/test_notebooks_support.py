"""Static checks of the course notebooks, the rules strict nbval cannot see (nbval itself runs them, see tests/test_notebooks.py).

The notebooks must be saved from a clean top-to-bottom run, call vit_ms instead of pasting code, keep text that
matplotlib cannot draw out of their code, and keep everything that varies between machines out of the outputs nbval
compares.
"""
import ast
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat (installed with jupyter) reads the notebooks")


def coalesce_streams(outputs):
    """nbval's own folding of saved streams (carriage returns overwrite their line), so the checks see what it sees."""
    return pytest.importorskip("nbval.plugin", reason="nbval folds the saved streams").coalesce_streams(outputs)

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_patch_embedding", "02_position_embedding", "03_encoder_block", "04_training", "05_evaluation")
IGNORE_OUTPUT = "nbval-ignore-output"
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef]")
WIDGET = "application/vnd.jupyter.widget-view+json"


def _read(name):
    return nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _python_source(cell):
    """The cell's source as plain Python: IPython magics (%..., !...) become `pass`, keeping the indentation."""
    return "\n".join(re.sub(r"^(\s*)[%!].*$", r"\1pass", line) for line in cell.source.splitlines())


def test_the_five_notebooks_are_there_and_valid():
    found = sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb"))
    assert found == sorted(NAMES)
    for name in NAMES:
        nbformat.validate(_read(name))


@pytest.mark.parametrize("name", NAMES)
def test_saved_from_a_clean_top_to_bottom_run(name):
    cells = _code_cells(_read(name))
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), \
        "re-run the notebook top to bottom (jupyter nbconvert --to notebook --execute --inplace) before saving"
    errors = [cell.source[:60] for cell in cells if any(o.output_type == "error" for o in cell.outputs)]
    assert not errors, f"cells saved with an error: {errors}"
    timed = [cell.source[:60] for cell in cells if "execution" in cell.metadata]
    assert not timed, ("execution timestamps in the cell metadata change on every run; execute with "
                       f"--ExecutePreprocessor.record_timing=False: {timed[:3]}")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_calls_vit_ms_and_defines_nothing(name):
    cells = _code_cells(_read(name))
    trees = [ast.parse(_python_source(cell)) for cell in cells]
    assert any(isinstance(node, (ast.Import, ast.ImportFrom)) and "vit_ms" in ast.unparse(node)
               for tree in trees for node in ast.walk(tree))
    # except notebook 04's hand-written training step, which tests/test_train_step_lesson.py checks against vit_ms
    trees = [tree for tree, cell in zip(trees, cells) if "train-step-lesson" not in cell.metadata.get("tags", [])]
    defined = [node.name for tree in trees for node in ast.walk(tree)
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert not defined, f"functions/classes belong in vit_ms, not in a notebook: {defined}"


@pytest.mark.parametrize("name", NAMES)
def test_prose_is_chinese_and_code_is_ascii_english(name):
    nb = _read(name)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {name[:2]} ")
    assert all(CJK.search(cell.source) for cell in nb.cells if cell.cell_type == "markdown")
    # Chinese figure text goes through vit_ms.fonts.bilingual, which falls back to English where no Chinese font
    # exists (matplotlib's own fonts have no CJK glyphs); printed text (the check-in summary) may be Chinese
    drawing = [cell for cell in _code_cells(nb) if any(call in cell.source for call in ("plt.", "plots.", "ax.", "fig."))]
    bare = [line.strip()[:60] for cell in drawing for line in cell.source.splitlines()
            if CJK.search(line) and "bilingual(" not in line and not line.lstrip().startswith("#")]
    assert not bare, f"Chinese figure text not given to bilingual(): {bare}"


@pytest.mark.parametrize("name", NAMES)
def test_compared_outputs_hold_nothing_machine_dependent(name):
    for cell in _code_cells(_read(name)):
        if IGNORE_OUTPUT in cell.metadata.get("tags", []):
            continue
        streams = [o.name for o in cell.outputs if o.output_type == "stream"]
        assert "stderr" not in streams, f"stderr (warnings, progress bars) breaks strict nbval: {cell.source[:60]}"
        assert not any(WIDGET in o.get("data", {}) for o in cell.outputs), \
            f"progress-bar widget in a compared cell: {cell.source[:60]}"
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "vit_ms: using" not in text, f"the device depends on the machine: {cell.source[:60]}"


TQDM_COUNT = re.compile(r"\|[^|\n]*\| *(\d+)/(\d+) \[")


def _shown_text(cell):
    """The text Jupyter shows for a saved cell: streams joined, a carriage return overwriting its line (as nbval and
    the notebook front ends fold them), plus each display's text/plain."""
    outputs = coalesce_streams([nbformat.from_dict(dict(o)) for o in cell.outputs])
    return [o.text for o in outputs if o.output_type == "stream"] + \
        [o.data["text/plain"] for o in outputs if "text/plain" in o.get("data", {})]


@pytest.mark.parametrize("name", NAMES)
def test_saved_progress_bars_show_their_final_state(name):
    """A widget bar is saved as the text it had when it appeared ("0%| | 0/62"); a text bar folds to its last line."""
    for cell in _code_cells(_read(name)):
        assert not any(WIDGET in o.get("data", {}) for o in cell.outputs), \
            f"progress-bar widget saved at its first state: {cell.source[:60]}"
        stuck = [m.group(0) for text in _shown_text(cell) for m in TQDM_COUNT.finditer(text)
                 if m.group(1) != m.group(2)]
        assert not stuck, f"progress bars saved unfinished {stuck[:3]}: {cell.source[:60]}"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_prints_the_device_line_once(name):
    printed = "".join(text for cell in _code_cells(_read(name)) for text in _shown_text(cell))
    assert printed.count("vit_ms: using ") <= 1


def test_stuck_bar_check_sees_a_widget_snapshot_and_passes_a_folded_text_bar():
    snapshot = "epoch 1/3:   0%|          | 0/62 [00:00<?, ?it/s]"
    folded = coalesce_streams([nbformat.from_dict(dict(output_type="stream", name="stderr", text=text)) for text in
                               ("\r" + snapshot, "\repoch 1/3: 100%|##########| 62/62 [00:09<00:00, 6.5it/s]", "\n")])
    assert [m.groups() for m in TQDM_COUNT.finditer(snapshot)] == [("0", "62")]
    assert [m.groups() for m in TQDM_COUNT.finditer(folded[0].text)] == [("62", "62")]


def test_training_notebook_has_a_papermill_parameters_cell_first():
    first = _code_cells(_read("04_training"))[0]
    assert first.metadata.get("tags") == ["parameters"]
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(first.source).body}
    assert values == dict(DEVICE="auto", RECIPE="auto", EPOCHS=None)


@pytest.mark.parametrize("name", ["02_position_embedding", "05_evaluation"])
def test_notebooks_showing_a_trained_model_get_it_from_the_package(name):
    """The notebook recipe's model, reused when notebook 04 trained it, trained otherwise: no notebook runs another."""
    source = "\n".join(cell.source for cell in _code_cells(_read(name)))
    assert "notebook_model(ROOT)" in source and "%run" not in source


def test_sanitize_config_makes_figure_sizes_compare_equal():
    get_sanitize_patterns = pytest.importorskip("nbval.plugin", reason="nbval runs the notebooks").get_sanitize_patterns
    patterns = get_sanitize_patterns((NOTEBOOKS_DIR / "sanitize.cfg").read_text())
    assert patterns, "nbval found no regex:/replace: pairs in notebooks/sanitize.cfg"

    def sanitize(text):
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    assert sanitize("<Figure size 640x480 with 1 Axes>") == sanitize("<Figure size 1480x490 with 4 Axes>")
    assert sanitize("<Figure size 640x480 with 1 Axes>") != sanitize("[1, 197, 768]")
