"""Every command in README.md and in the notebooks' markdown runs here as written, scaled down only by flags.

The commands are read from the files themselves (fenced bash/python blocks and inline `python -m ...` / `msrun ...`
code), in order, in one sandbox laid out like the repository root (``vit_ms`` and ``scripts`` are links to the
package and to the launcher folder, so ``msrun ... scripts/train.py`` works). msrun commands that differ only in
``--node_rank`` (one per machine) run at the same time, on this machine, with ``--master_addr=127.0.0.1``. Nothing reaches the internet: the download commands get ``--url`` of a server
on 127.0.0.1 that serves a course-shaped zip and checkpoint. A command this file has no rule for fails the test:
a README command with no test is a bug.
"""
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from file_server import FileServer
from test_subset import fake_imagenet
from test_weights import random_params, write_layout

ROOT = Path(__file__).resolve().parents[1]
SMALL_TRAIN = "--epochs 1 --warmup-epochs 0 --depth 1 --image-size 32 --batch-size 8 --num-workers 1"
SMALL_BENCH = "--model vit_ti_16 --depth 1 --image-size 32 --patch-size 8 --batch-size 2 --steps 1 --warmup 0 --rounds 1"
# commands that .ci/run itself runs as written (a test cannot reinstall packages or run the test suite inside it)
# (the fast tier included; `python -m vit_ms doctor --smoke` runs here, by the doctor rule)
RUN_BY_CI = ("pip install -r requirements.txt", "python -m pytest", "pip install -e .", 'python -m pytest -m "not slow"',
             "pip install --upgrade pip")


def _commands_in(text, fenced):
    """Commands of a markdown text: lines of ```bash blocks (continuations joined, comments dropped), whole
    ```python blocks, and inline `python -m ...` / `msrun ...` code spans."""
    found = []
    for language, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if language == "python":
            found.append(("python", body))
        elif language == "bash" or (language == "" and fenced == "all"):
            for line in body.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s+#.*$", "", line).strip()
                if line and not line.startswith("#"):
                    found.append(("bash", " ".join(line.split())))
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    found += [("bash", " ".join(c.split())) for c in re.findall(r"`((?:python -m |msrun )[^`]+)`", prose)]
    return found


def documented_commands():
    commands = _commands_in((ROOT / "README.md").read_text(encoding="utf-8"), fenced="bash")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "markdown":
                commands += [c for c in _commands_in("".join(cell["source"]), fenced="bash") if c[0] == "bash"]
    unique = []
    for command in commands:
        if command not in unique:
            unique.append(command)
    return unique


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _course_zip():
    """The course zip's layout: dataset/{train,val,infer}/<wnid>/*.JPEG, here 4 classes of small JPEGs."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for c, wnid in enumerate(("n01440764", "n01443537", "n01484850", "n01491361")):
            for split, count in (("train", 16), ("val", 4), ("infer", 1)):
                for i in range(count):
                    pixels = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
                    pixels[:, :, c % 3] = 255                                  # a colour per class
                    image = io.BytesIO()
                    Image.fromarray(pixels).save(image, format="JPEG")
                    archive.writestr(f"dataset/{split}/{wnid}/{wnid}_{i}.JPEG", image.getvalue())
    return buffer.getvalue()


def _course_checkpoint(tmp_path):
    """The course checkpoint's layout (MindSpore tutorial names, ViT-B/16, 224, 1000 classes), scaled to one block."""
    params = random_params(np.random.default_rng(5), image_size=224, patch_size=16, dim=768, depth=1, num_heads=12,
                           num_classes=1000)
    return write_layout("tutorial", params, tmp_path).read_bytes()


def scaled(command, server, port=None):
    """The command with flags that scale it down (or with the local server's URL); None if no rule covers it.
    ``port``: msrun's --master_port, shared by the nodes of one job."""
    rules = [
        ("python -m vit_ms --help", ""),
        ("jupyter lab", "--version"),  # starts nothing: the server would wait for a browser
        ("python -m vit_ms demo", "--epochs 1 --num-workers 1"),
        ("python -m vit_ms make-sample-data", ""),
        ("python -m vit_ms train", SMALL_TRAIN),
        ("python -m vit_ms eval", "--num-workers 1 --batch-size 8"),
        ("python -m vit_ms predict", ""),
        ("python -m vit_ms doctor", ""),
        ("python -m vit_ms convert", ""),
        ("python -m vit_ms download dataset", f"--url {server.url('/notebook/datasets/vit_imagenet_dataset.zip')}"),
        ("python -m vit_ms download checkpoint", f"--url {server.url('/vision/vit_b_16_224.ckpt')}"),
        ("python -m vit_ms build-subset", "--classes 3 --train-per-class 2 --val-per-class 1"),
        ("python -m vit_ms bench --recipe", "--steps 1 --warmup 0"),  # one epoch of the recipe's data
        ("python -m vit_ms bench", SMALL_BENCH),
        ("python -m vit_ms.kernels.bench", "--batch-size 1 --runs 1"),
        ("python -m vit_ms.kernels.profile",
         "--model vit_ti_16 --depth 1 --image-size 32 --patch-size 8 --batch-size 2 --num-classes 10 --steps 1 "
         "--warmup 1"),
    ]
    for prefix, flags in rules:
        if command == prefix or command.startswith(prefix + " "):
            return f"{command} {flags}".strip()
    if command.startswith("msrun "):
        nodes = int(re.search(r"--worker_num=(\d+)", command)[1]) // int(re.search(r"--local_worker_num=(\d+)",
                                                                                   command)[1])
        command = re.sub(r"--worker_num=\d+", "--worker_num=2", command)  # 2 workers: 1 on each of 2 machines
        command = re.sub(r"--local_worker_num=\d+", f"--local_worker_num={2 // nodes}", command)
        command = re.sub(r"--master_port=\d+", f"--master_port={port or _free_port()}", command)
        command = re.sub(r"--master_addr=\S+", "--master_addr=127.0.0.1", command)  # the stand-in for node 0
        return f"{command} {SMALL_TRAIN}"
    return None


def node_groups(commands):
    """The commands in order, each as a list of the commands to run at the same time: msrun commands that differ
    only in --node_rank (the same job typed on each machine) form one group."""
    groups, index = [], {}
    for kind, command in commands:
        key = re.sub(r"--node_rank=\d+", "--node_rank=N", command) if command.startswith("msrun ") else None
        if key is not None and "--node_rank=" in command and key in index:
            groups[index[key]].append((kind, command))
        else:
            if key is not None and "--node_rank=" in command:
                index[key] = len(groups)
            groups.append([(kind, command)])
    return groups


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder laid out like the repository root, a local ImageNet copy and the course files on a local server."""
    base = tmp_path_factory.mktemp("readme")
    repo = base / "repo"
    repo.mkdir()
    (repo / "vit_ms").symlink_to(ROOT / "vit_ms")
    (repo / "scripts").symlink_to(ROOT / "scripts")
    imagenet = fake_imagenet(base / "imagenet")
    files = {"/notebook/datasets/vit_imagenet_dataset.zip": _course_zip(),
             "/vision/vit_b_16_224.ckpt": _course_checkpoint(base)}
    env = dict(os.environ, GLOG_v="3", MPLBACKEND="Agg", IMAGENET=str(imagenet),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with FileServer(files) as server:
        yield repo, server, env


def test_every_documented_command_has_a_rule():
    class NoServer:
        def url(self, path):
            return path

    missing = [command for kind, command in documented_commands() if kind == "bash" and command not in RUN_BY_CI
               and not all(part in RUN_BY_CI or scaled(part, NoServer()) for part in command.split(" && "))]
    assert not missing, f"commands in README.md / notebooks with no test: {missing}"


def test_commands_that_ci_runs_are_in_ci_run():
    ci = (ROOT / ".ci" / "run").read_text()
    for command in RUN_BY_CI:
        assert command in ci, command


@pytest.mark.slow
def test_every_documented_command_runs(sandbox):
    repo, server, env = sandbox
    failures, ran, together = [], [], []
    for group in node_groups(documented_commands()):
        port = _free_port()  # the nodes of one msrun job meet at one port
        jobs = []
        for kind, command in group:
            if kind == "python":
                argv, shown = [sys.executable, "-c", command], "python block:\n" + command
            else:
                if command in RUN_BY_CI:
                    continue
                parts = [p for p in command.split(" && ") if p not in RUN_BY_CI]  # the pip/pytest part runs in CI
                if not parts:
                    continue
                runnable = " && ".join(scaled(p, server, port) for p in parts)
                argv, shown = ["bash", "-c", runnable], runnable
            if jobs:
                time.sleep(2)  # node 0 first: its scheduler takes the port
            jobs.append((shown, subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE, text=True)))
        for i, (shown, job) in enumerate(jobs):
            stdout, stderr = job.communicate(timeout=900)
            ran.append(shown)
            # on one machine every msrun whose --master_addr is local starts a scheduler too; the other nodes' cannot
            # bind node 0's port and their msrun exits with 1, while their workers join node 0's job
            second_scheduler = i > 0 and "Failed to init the tcp server" in stdout + stderr
            if job.returncode != 0 and not second_scheduler:
                failures.append(f"$ {shown}\n(exit {job.returncode})\n{stdout[-1500:]}\n{stderr[-3000:]}")
        if len(jobs) > 1:
            together.append([shown for shown, _ in jobs])
    assert not failures, "\n\n".join(failures)
    assert any(c.startswith("msrun ") for c in ran) and any("download dataset" in c for c in ran)
    assert (repo / "runs" / "dp" / "model.ckpt").is_file()           # msrun's rank 0 wrote the data-parallel run
    # the two-machine job: node ranks 0 and 1 ran together, one worker each, and trained with world size 2
    assert any(sorted(re.search(r"--node_rank=(\d+)", c)[1] for c in group) == ["0", "1"] for group in together)
    assert json.loads((repo / "runs" / "dp2" / "metrics.json").read_text())["world_size"] == 2
    assert (repo / "checkpoints" / "vit_b_16_224.safetensors").is_file()
    assert json.loads((repo / "runs" / "course" / "metrics.json").read_text())["epochs"] == 1
