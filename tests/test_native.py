"""vit_ms.native: the C++ CPU kernels are built once, cached, and replaced by MindSpore's kernels (with a warning)
when they cannot be built."""
import warnings

import pytest

from vit_ms.kernels import native
from vit_ms.kernels.layers import LayerNorm, fused_attention
from vit_ms.optim import AdamW


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty kernel cache and a cleared in-process memo; restored afterwards."""
    monkeypatch.setenv("VIT_MS_CACHE", str(tmp_path / "cache"))
    native.library.cache_clear()
    native.dnnl_library.cache_clear()
    yield tmp_path / "cache"
    native.library.cache_clear()
    native.dnnl_library.cache_clear()


@pytest.mark.parametrize("build", [native.library, native.dnnl_library], ids=["gelu-layernorm", "attention"])
def test_library_is_built_once_and_reused(needs_cpu_kernels, fresh, build):
    path = build()
    assert path is not None and path.parent == fresh and path.suffix == ".so"
    built = path.stat().st_mtime_ns
    build.cache_clear()
    assert build() == path and path.stat().st_mtime_ns == built   # from the cache, not rebuilt
    assert not list(fresh.glob("*.part"))                           # no half-written file left


def test_attention_library_links_mindspores_own_onednn(needs_cpu_kernels, fresh):
    import subprocess

    onednn = native.mindspore_onednn()
    assert onednn is not None and onednn.name.startswith("libdnnl.so.") and onednn.parent.parent.name == "mindspore"
    linked = subprocess.run(["ldd", str(native.dnnl_library())], capture_output=True, text=True).stdout
    assert f"{onednn.name} => {onednn}" in linked


def test_missing_onednn_is_named_and_falls_back(fresh, monkeypatch):
    monkeypatch.setattr(native, "mindspore_onednn", lambda: None)
    with pytest.warns(RuntimeWarning, match=r"no oneDNN library \(mindspore/lib/libdnnl\.so\.\*\) for the attention "
                                            r"kernel; using MindSpore's CPU kernels"):
        assert fused_attention() is None


def test_missing_onednn_leaves_the_other_kernels(needs_cpu_kernels, fresh, monkeypatch):
    monkeypatch.setattr(native, "mindspore_onednn", lambda: None)
    with pytest.warns(RuntimeWarning, match="no oneDNN library"):
        assert native.dnnl_library() is None
    assert native.library() is not None                 # the other kernels do not need it


def test_switched_off_by_environment(fresh, monkeypatch):
    monkeypatch.setenv("VIT_MS_NATIVE", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # switching it off on purpose is not worth a warning
        assert native.library() is None and native.dnnl_library() is None
        assert LayerNorm(8, 1e-6).fused is None              # MindSpore's kernels
    assert not fresh.exists()


def test_broken_compiler_warns_once_and_falls_back(fresh, monkeypatch):
    monkeypatch.setenv("CXX", "false")                       # a "compiler" that always fails
    expected = (r"false could not build adamw\.cc, gelu\.cc, layer_norm\.cc, layer_norm_grad\.cc "
                r"\(exit status 1\); using MindSpore's CPU kernels")
    with pytest.warns(RuntimeWarning, match=expected):
        assert native.library() is None
    with pytest.warns(RuntimeWarning, match=r"false could not build attention\.cc \(exit status 1\)"):
        assert fused_attention() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # the result is remembered: no second warning
        assert LayerNorm(8, 1e-6).fused is None and fused_attention() is None
        assert AdamW(LayerNorm(8).trainable_params()).one_pass is None    # MindSpore's Adam kernel
    assert not list(fresh.glob("*"))                         # nothing half-built is cached


def test_missing_compiler_is_named(fresh, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with pytest.warns(RuntimeWarning, match=r"running /nonexistent/g\+\+ failed"):
        assert native.library() is None


def test_unwritable_cache_is_named(fresh, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("VIT_MS_CACHE", str(blocker / "cache"))   # under a file: cannot be created
    with pytest.warns(RuntimeWarning, match=r"cannot create the kernel cache .*file/cache .*set VIT_MS_CACHE"):
        assert native.library() is None


@pytest.mark.slow
def test_kernel_bench_command_times_each_layer_pair():
    """docs/performance.md's command, scaled down by its flags."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, GLOG_v="3")
    done = subprocess.run([sys.executable, "-m", "vit_ms.kernels.bench", "--batch-size", "1", "--runs", "1", "--json"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert [row["layer"].split()[0] for row in report["rows"]] == ["patch", "Dense", "Dense", "LayerNorm", "exact"]
    for row in report["rows"]:
        assert row["mindspore_ms"] > 0 and row["vit_ms_ms"] > 0
        assert abs(row["speedup"] - row["mindspore_ms"] / row["vit_ms_ms"]) < 1e-6
    bad = subprocess.run([sys.executable, "-m", "vit_ms.kernels.bench", "--runs", "0"], capture_output=True,
                         text=True, timeout=300, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == "error: runs must be a positive integer, got 0"
