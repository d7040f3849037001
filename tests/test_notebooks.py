"""Each notebook passes strict nbval run on its own, as from a fresh clone: in a folder laid out like the repository
that holds only that notebook, no runs/ or data/ from another notebook, no course files, an empty vit_ms cache.
So they run in any order (`python -m pytest notebooks` runs them all in one folder, in order)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def test_all_five_notebooks_are_run():
    assert len(NAMES) == 5


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_passes_strict_nbval_alone(name, tmp_path):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    for file in (f"{name}.ipynb", "sanitize.cfg"):
        shutil.copy(NOTEBOOKS / file, repo / "notebooks" / file)
    env = dict(os.environ, GLOG_v="3", MPLBACKEND="Agg", VIT_MS_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-sanitize-with", "notebooks/sanitize.cfg", "--nbval-cell-timeout=1500",
                           f"notebooks/{name}.ipynb"], cwd=repo, env=env, capture_output=True, text=True, timeout=2400)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def _outputs(notebook):
    """(source, printed text) of every code cell of an executed notebook, and its error outputs."""
    import json

    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    printed = [("".join(c["source"]), "".join("".join(o.get("text", "")) for o in c["outputs"])) for c in cells]
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    return printed, errors


@pytest.mark.slow
def test_notebooks_02_and_05_show_the_published_vit_b16_when_its_checkpoint_is_there(tmp_path):
    """The cloud path: with the course's vit_b_16_224.ckpt in checkpoints/ (here random ViT-B/16 weights in the
    tutorial's layout and size, as the real 330 MB file cannot be fetched in CI), notebook 02 adds the published
    model's Figure 7 and notebook 05 its top-5 for the photo, attention maps and summary line."""
    from numpy_vit import random_params, to_vit_ms
    from test_weights import TUTORIAL_NAMES, rename, save_ckpt

    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "checkpoints").mkdir()
    params = random_params(np.random.default_rng(0), image_size=224, patch_size=16, dim=768, depth=12, num_heads=12,
                           num_classes=1000, scale=0.02)
    save_ckpt(repo / "checkpoints" / "vit_b_16_224.ckpt", rename(to_vit_ms(params), TUTORIAL_NAMES))
    del params
    env = dict(os.environ, GLOG_v="3", MPLBACKEND="Agg", VIT_MS_CACHE=str(tmp_path / "cache"))
    executed = {}
    for name in ("02_position_embedding", "05_evaluation"):   # 05 reuses the model 02 trained, as a learner's would
        shutil.copy(NOTEBOOKS / f"{name}.ipynb", repo / "notebooks")
        done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                               "--ExecutePreprocessor.timeout=1200", "--output-dir", str(tmp_path / "out"),
                               f"{name}.ipynb"], cwd=repo / "notebooks", env=env, capture_output=True, text=True,
                              timeout=1500)
        assert done.returncode == 0, done.stderr[-4000:]
        executed[name], errors = _outputs(tmp_path / "out" / f"{name}.ipynb")
        assert not errors, errors
    checkpoint = str(repo / "checkpoints" / "vit_b_16_224.ckpt")
    text02, text05 = ("\n".join(out for _, out in executed[name])
                      for name in ("02_position_embedding", "05_evaluation"))
    assert f"published ViT-B/16 loaded from {checkpoint}" in text02
    assert "not on this machine" not in text02 + text05
    # the published model gets its row in the structure table
    assert any("position_structure" in source and "published ViT-B/16" in out
               for source, out in executed["02_position_embedding"])
    top5 = text05.split("top-5 for the photo:\n", 1)[1].splitlines()[:5]
    assert f"ViT-B/16 from {checkpoint}, 86,567,656 parameters" in text05
    assert "shown: the published ViT-B/16 on a real photo, grace_hopper.jpg" in text05  # says which inference
    assert len(top5) == 5 and all(line.strip().split("  ")[0].endswith("%") for line in top5), top5
    assert f"已发布的 ViT-B/16 (published) 识别照片：{top5[0].split('%', 1)[1].strip()} (" in text05
