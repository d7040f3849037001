"""The benchmark on a tiny ViT: the report's structure, positive numbers, the table, the JSON CLI, bad arguments.
No timing assertions: speed depends on the machine and its load."""
import json
import os
import subprocess
import sys

import pytest

from vit_ms import bench

TINY = dict(model="vit_ti_16", image_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3, num_classes=10,
            batch_size=4, steps=2, warmup=1)


@pytest.fixture(scope="module")
def report():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench, "_timm_available", lambda: False)  # the optional PyTorch row, as without PyTorch
        return bench.run_benchmark(compare=("mindcv", "timm"), rounds=2, **TINY)


@pytest.mark.slow
def test_report_measures_both_modes_for_both_mindspore_models(report, cpu_only):
    assert report["modes"] == ["eval", "train"]
    assert [r["framework"] for r in report["results"]] == ["vit_ms", "mindcv", "timm"]
    ours, mindcv, timm = report["results"]
    assert ours["params"] == mindcv["params"] > 0  # the same architecture in both
    for result in (ours, mindcv):
        assert result["device"] == "CPU" and result["amp_level"] == "O0" and result["load_average"] >= 0
        for mode in ("eval", "train"):
            r = result[mode]
            assert r["img_per_s"] > 0 and r["compile_s"] > 0 and r["peak_rss_mb"] > 0 and r["steps"] == 2
            assert r["min_step_s"] <= r["median_step_s"]
            assert r["img_per_s"] == pytest.approx(TINY["batch_size"] / r["median_step_s"])
    assert "not importable" in timm["skipped"]
    assert report["versions"]["mindspore"] and report["config"]["arch"]["embed_dim"] == 48


@pytest.mark.slow
def test_rounds_are_interleaved_and_ratios_are_per_round(report):
    assert len(report["rounds"]) == 2
    for results in report["rounds"]:  # each round measures every framework, in the same order
        assert [r["framework"] for r in results] == ["vit_ms", "mindcv", "timm"]
    ours, mindcv, _ = report["results"]
    for mode in ("eval", "train"):
        ratios = [rnd[0][mode]["img_per_s"] / rnd[1][mode]["img_per_s"] for rnd in report["rounds"]]
        assert mindcv[mode]["vit_ms_speedup_rounds"] == pytest.approx(ratios)
        assert mindcv[mode]["vit_ms_speedup"] == pytest.approx(sum(ratios) / 2)  # the median of two
        steps = sorted(rnd[0][mode]["median_step_s"] for rnd in report["rounds"])
        assert ours[mode]["median_step_s"] == pytest.approx(sum(steps) / 2)
        assert ours[mode]["img_per_s_rounds"] == pytest.approx(
            [TINY["batch_size"] / rnd[0][mode]["median_step_s"] for rnd in report["rounds"]])
    assert ours["threads"]["runtime_num_threads"] >= 1


# A fresh process in which MindSpore has started, as `python -m vit_ms bench` has when it launches the workers:
# MindSpore's runtime has set OMP_NUM_THREADS=1 in the C-level environment (os.environ does not show it). The timm
# worker, launched from there, must start with the thread settings of a plain process all the same.
WORKER_SCRIPT = """
import json, multiprocessing, os
import mindspore as ms
from vit_ms import bench
from vit_ms.runtime import process_env
env = bench._user_environment()                 # what bench captures before MindSpore starts
ms.Tensor([1.0]) + 1                            # MindSpore's runtime starts
config = dict(env=env)
result = bench._run_worker(multiprocessing.get_context("spawn"), "timm", config)
print(json.dumps(dict(parent=process_env("OMP_NUM_THREADS"), worker=result["started_with"])))
"""


def test_timm_worker_starts_with_the_threads_of_a_plain_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in bench.THREAD_VARIABLES}
    env["GLOG_v"] = "3"
    plain = subprocess.run([sys.executable, "-c", "import os, json; print(json.dumps({n: os.environ.get(n) for n in "
                            f"{bench.THREAD_VARIABLES!r}}}))"], capture_output=True, text=True, env=env, timeout=60)
    done = subprocess.run([sys.executable, "-c", WORKER_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["parent"] == "1"  # the trap is real: MindSpore set it in the launching process
    assert seen["worker"] == json.loads(plain.stdout)  # and the worker does not inherit it
    # with the user's own setting, the worker gets exactly that
    done = subprocess.run([sys.executable, "-c", WORKER_SCRIPT], capture_output=True, text=True, timeout=300,
                          env=dict(env, OMP_NUM_THREADS="2"), cwd=tmp_path)
    assert json.loads(done.stdout.strip().splitlines()[-1])["worker"]["OMP_NUM_THREADS"] == "2"


@pytest.mark.slow
def test_table_shows_every_row_and_ratio(report):
    table = bench.format_table(report)
    assert "patch 8, dim 48, depth 1, heads 3) at 32x32, batch 4" in table
    assert "mindspore " + report["versions"]["mindspore"] in table
    ours, mindcv, _ = report["results"]
    rows = {tuple(line.split()[:2]): line.split() for line in table.splitlines()
            if line.startswith(("vit_ms ", "mindcv "))}
    assert set(rows) == {(f, m) for f in ("vit_ms", "mindcv") for m in ("eval", "train")}
    assert float(rows["vit_ms", "train"][2]) == pytest.approx(ours["train"]["img_per_s"], abs=0.006)
    assert float(rows["mindcv", "eval"][-2]) == pytest.approx(mindcv["eval"]["vit_ms_speedup"], abs=0.006)
    assert float(rows["mindcv", "eval"][-1]) == pytest.approx(mindcv["load_average"], abs=0.06)
    assert "timm     -      PyTorch + timm are not importable" in table
    assert f"threads vit_ms: runtime_num_threads {ours['threads']['runtime_num_threads']}" in table
    assert "2 interleaved round(s)" in table


def run_bench_cli(cwd, *flags):
    """`python -m vit_ms bench --json FLAGS` on the TINY model; (its report, its stderr)."""
    args = [sys.executable, "-m", "vit_ms", "bench", "--json", *flags]
    for key, value in TINY.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=cwd, env=dict(os.environ, GLOG_v="3"))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), done.stderr


def test_cli_json(tmp_path):
    report, _ = run_bench_cli(tmp_path, "--mode", "eval", "--rounds", "1", "--compare")
    assert report["modes"] == ["eval"] and [r["framework"] for r in report["results"]] == ["vit_ms"]
    assert report["results"][0]["eval"]["img_per_s"] > 0 and "train" not in report["results"][0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="vit_x"), r"unknown model 'vit_x'; valid names: vit_ti_16"),
    (dict(mode="fast"), r"mode must be 'both', 'eval' or 'train', got 'fast'"),
    (dict(batch_size=0), r"batch_size must be a positive integer, got 0"),
    (dict(compare=("keras",)), r"compare: unknown framework\(s\) \['keras'\]"),
    (dict(image_size=30), r"image_size 30 is not divisible by the patch size 16"),
    (dict(dropout=0.1), r"unknown architecture override\(s\) \['dropout'\]"),
    (dict(in_process="keras", rounds=1), r"in_process: unknown framework 'keras'"),
    (dict(in_process="timm", rounds=3), r"an in-process run measures once \(rounds=1\), got rounds=3"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bench.run_benchmark(**kwargs)


@pytest.mark.slow
def test_mixed_precision_o2_is_measured():
    """O2 (the Ascend/GPU default) through the same worker, here on CPU."""
    report = bench.run_benchmark(compare=(), amp_level="O2", rounds=1, **TINY)
    ours = report["results"][0]
    assert "error" not in ours, ours.get("error")
    assert ours["amp_level"] == "O2" and ours["train"]["img_per_s"] > 0 and ours["eval"]["img_per_s"] > 0


def test_in_process_run_measures_one_framework_in_a_plain_process(tmp_path):
    """--in-process: the command's own process measures the one framework (no worker is spawned), and nothing has
    imported MindSpore before it, so a timm measurement starts as a plain PyTorch process would."""
    report, stderr = run_bench_cli(tmp_path, "--mode", "train", "--in-process", "vit_ms")
    assert len(report["rounds"]) == 1 and [r["framework"] for r in report["rounds"][0]] == ["vit_ms"]
    ours = report["results"][0]
    assert ours["train"]["img_per_s"] > 0 and ours["threads"]["runtime_num_threads"] >= 1
    assert "round 1/1, measuring vit_ms" in stderr
    script = ("import sys; from vit_ms import bench\n"
              "def timm_worker(config):\n"
              "    raise RuntimeError(f'mindspore imported: {\"mindspore\" in sys.modules}')\n"
              "bench._timm_available, bench._timm_worker = lambda: True, timm_worker\n"
              f"print(bench.run_benchmark(in_process='timm', rounds=1, **{TINY!r})['rounds'][0][0]['error'])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=dict(os.environ, GLOG_v="3"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "RuntimeError: mindspore imported: False"
