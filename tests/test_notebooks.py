"""Each notebook passes strict nbval run on its own, as from a fresh clone: in a folder laid out like the repository
that holds only that notebook, no runs/ or data/ from another notebook, no course files, an empty vit_ms cache.
So they run in any order (`python -m pytest notebooks` runs them all in one folder, in order)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def test_all_five_notebooks_are_run():
    assert len(NAMES) == 5


@pytest.mark.parametrize("name", NAMES)
def test_notebook_passes_strict_nbval_alone(name, tmp_path):
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    for file in (f"{name}.ipynb", "sanitize.cfg"):
        shutil.copy(NOTEBOOKS / file, repo / "notebooks" / file)
    env = dict(os.environ, GLOG_v="3", MPLBACKEND="Agg", VIT_MS_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-sanitize-with", "notebooks/sanitize.cfg", "--nbval-cell-timeout=600",
                           f"notebooks/{name}.ipynb"], cwd=repo, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
