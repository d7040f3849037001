"""python -m vit_ms.kernels.profile on a tiny ViT: the kernel classes it finds, what the shares add up to, the launches
it counts, the files it leaves, its errors. No timing assertions: speed depends on the machine and its load."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vit_ms.kernels import profile

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "vit_ti_16", "--image-size", "32", "--patch-size", "8", "--embed-dim", "48", "--depth", "2",
        "--num-heads", "3", "--num-classes", "10", "--batch-size", "4", "--steps", "2"]


def run(*args, cwd, tmp=None):
    """The tool in a fresh process, from ``cwd``, with this checkout importable (CI does not install it)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, GLOG_v="3", PYTHONPATH=path, **({"TMPDIR": str(tmp)} if tmp else {}))
    return subprocess.run([sys.executable, "-m", "vit_ms.kernels.profile", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    cwd, tmp = tmp_path_factory.mktemp("cwd"), tmp_path_factory.mktemp("tmp")
    done = run(*TINY, "--json", cwd=cwd, tmp=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    # the profiler's files went to a temporary folder, deleted afterwards; nothing is left in the working folder
    assert not list(cwd.iterdir()) and not list(tmp.glob("vit_ms_profile_*"))
    return json.loads(done.stdout)  # stdout is the JSON alone: the profiler's progress lines went to stderr


@pytest.mark.slow
def test_classes_cover_the_step(report, needs_cpu_kernels):
    classes = {c["name"]: c for c in report["classes"]}
    assert classes["matmul"]["launches"] > 0 and classes["matmul"]["ms"] > 0
    for name in ("attention", "layer norm", "GELU", "element-wise", "optimizer", "clipping"):
        assert classes[name]["launches"] > 0, name
    assert report["shapes_matched"]  # the profiler's shape lines matched its launches one to one
    assert sum(c["kernel_pct"] for c in report["classes"]) == pytest.approx(100)
    assert sum(c["ms"] for c in report["classes"]) == pytest.approx(report["kernel_ms"])
    assert sum(c["step_pct"] for c in report["classes"]) == pytest.approx(100 * report["kernel_ms"] / report["wall_ms"])
    assert report["outside_kernels_ms"] == pytest.approx(report["wall_ms"] - report["kernel_ms"])
    assert sum(o["ms"] for o in report["ops"]) == pytest.approx(report["kernel_ms"])
    assert report["unprofiled_wall_ms"] > 0 and report["kernel_ms"] > 0


@pytest.mark.slow
def test_launches_per_step_follow_the_model(report, needs_cpu_kernels):
    import vit_ms

    model = vit_ms.create_model("vit_ti_16", image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3,
                                num_classes=10)
    params = len(model.trainable_params())
    assert report["trainable_params"] == params
    ops = {o["op"]: o for o in report["ops"]}
    # one C++ update per parameter, one C++ sum of squares per gradient; none of MindSpore's kernels for either
    assert ops["Custom AdamWUpdate"]["launches"] == params and ops["Custom AdamWUpdate"]["kind"] == "optimizer"
    assert ops["Custom SumOfSquares"]["launches"] == params and ops["Custom SumOfSquares"]["kind"] == "clipping"
    assert not {"Adam", "ApplyGradientDescent", "Square"} & set(ops)
    assert ops["Custom GeluForward"]["launches"] == 2    # one per block: the sums of squares are told apart
    assert ops["Custom AttentionForward"]["launches"] == 2 == ops["Custom AttentionBackward"]["launches"]  # per block
    assert "Softmax" not in ops and "BatchMatMul" not in ops  # all in the fused attention kernels
    assert all(float(o["launches"]).is_integer() for o in report["ops"])  # every step launches the same kernels


@pytest.mark.slow
def test_table_and_kept_files(tmp_path):
    done = run(*TINY, "--steps", "1", "--output", tmp_path / "kept", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("vit_ti_16, patch size 8, embed dim 48, depth 2, num heads 3 at 32, batch 4")
    assert any(line.startswith("matmul ") for line in lines) and "top 10 op types" in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    framework = list((tmp_path / "kept").glob("*_ascend_ms/FRAMEWORK"))
    assert len(framework) == 1 and (framework[0] / "cpu_op_execute_timestamp_0.txt").stat().st_size > 0


def test_clipping_sum_of_squares_is_told_from_other_reductions():
    shapes = [["[64, 192]"], ["[64, 192]"], ["[64]"], ["[4, 17, 48]"], ["[48]"], ["[48]"], ["[68, 48]"],
              ["[20]", "[1]"], ["[1]", "[1]"], ["[4, 17, 48]"],
              ["[4, 17, 48]", "[4, 17, 48]", "[4, 17, 1]", "[4, 17, 1]", "[48]"],
              ["[4, 17, 3, 3, 16]"], ["[4, 17, 3, 3, 16]", "[4, 3, 17, 17]", "[4, 17, 3, 16]"],
              ["[4, 17, 48]", "[48]", "[48]", "[1]"], ["[4, 17, 192]"],
              ["[4, 17, 192]", "[4, 17, 192]", "[4, 17, 192]"], ["[192, 48]"], ["[48]"],
              ["[48]", "[48]", "[48]", "[48]", "[7]", "[2]", "NoShape"], ["[4, 17, 48]", "[48]", "[48]", "[1]"],
              ["[4, 17, 192]"]]
    names = ["Default/Square-op0", "Expand/_SumExt/ReduceSum-op0", "Expand/_SumExt/ReduceSum-op1",
             "Expand/_SumExt/ReduceSum-op2", "Default/Square-op1", "Expand/_SumExt/ReduceSum-op3",
             "Default/ReduceSum-op0", "Default/Mul-op0", "Default/AddN-op0", "Default/Custom-op0", "Default/Custom-op1",
             "Default/Custom-op2", "Default/Custom-op3", "Default/Custom-op4", "Default/Custom-op5",
             "Default/Custom-op6", "Default/Custom-op7", "Default/Custom-op8", "Default/Custom-op9",
             "Default/Custom-op10", "Default/Custom-op11"]
    launches = [(i, 0.1, name, name.rsplit("/", 1)[1].split("-")[0], inputs)
                for i, (name, inputs) in enumerate(zip(names, shapes))]
    named = profile._classify(launches, param_shapes=[[192, 48], [48], [64, 192], [64]])
    assert [kind for _, kind in named] == ["clipping"] * 3 + [
        "reductions", "clipping", "clipping", "reductions", "clipping", "clipping", "GELU", "layer norm", "attention",
        "attention", "layer norm", "GELU", "GELU", "clipping", "clipping", "optimizer", "layer norm", "GELU"]
    # a one-input Custom kernel is GELU's forward, or, on a parameter-shaped input, clipping's sum of squares
    assert [op for op, _ in named[-7:]] == ["Custom " + name for name in (
        "GeluForward", "GeluBackward", "SumOfSquares", "SumOfSquares", "AdamWUpdate", "LayerNormForward",
        "GeluForward")]
    assert profile._classify([(0, 0.1, "Default/Custom-op0", "Custom", None)]) == [("Custom", "other")]


@pytest.mark.parametrize("args, message", [(["--steps", "0"], "error: steps must be a positive integer"),
                                           (["--model", "vit_x"], "error: unknown model 'vit_x'"),
                                           (["--image-size", "30"], "error: image_size 30 is not divisible"),
                                           (["--bogus"], "error: unrecognized arguments: --bogus")])
def test_bad_arguments_give_one_error_line(tmp_path, args, message):
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert message in last and done.stderr.count("error:") == 1
    assert not list(tmp_path.iterdir())
