"""python -m vit_ms doctor: what it reports, and the non-zero exit when something the course needs is broken."""
import os
import subprocess
import sys

import mindspore
import numpy
import pytest

from vit_ms import doctor
from vit_ms.cli import main


def by_name(checks):
    return {c["check"]: c for c in checks}


@pytest.mark.slow
def test_doctor_command_reports_every_check(tmp_path, cpu_only):
    from machine import cpu_kernels_missing

    done = subprocess.run([sys.executable, "-m", "vit_ms", "doctor", "--root", str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, GLOG_v="3"))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    kernels = "  ok  CPU kernels            C++ kernels built" if cpu_kernels_missing() is None else \
        "note  CPU kernels            "
    for line in (f"mindspore              {mindspore.__version__}, ", "tested versions: 2.0.0 (Python 3.9), 2.7.1 "
                 "(Python 3.9), 2.10.0 (Python 3.11)", f"numpy                  {numpy.__version__}",
                 "backend in use: CPU; MindSpore sees: CPU", "installed on platform [CPU] successfully", kernels,
                 "flash attention        not used: Ascend only (this model runs on CPU)", "runtime_num_threads",
                 "python -m vit_ms download dataset", "python -m vit_ms download checkpoint"):
        assert line in out, line
    assert str(tmp_path / "data" / "dataset") in out                      # where the notebooks look
    assert "smoke test" not in out                                        # only with --smoke


def test_course_files_are_found_where_the_notebooks_look(tmp_path):
    (tmp_path / "data" / "dataset" / "train").mkdir(parents=True)
    (tmp_path / "data" / "dataset" / "val").mkdir()
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "vit_b_16_224.ckpt").write_bytes(b"x")
    checks = by_name(doctor._course_files(tmp_path))
    assert checks["course dataset"]["status"] == "ok" and checks["course checkpoint"]["status"] == "ok"
    assert checks["course checkpoint"]["detail"] == str(tmp_path / "checkpoints" / "vit_b_16_224.ckpt")


def test_numpy_2_is_named_and_fails(monkeypatch, capsys):
    monkeypatch.setattr(numpy, "__version__", "2.1.0")
    check = doctor._numpy()
    assert check["status"] == "FAIL" and "numpy 2 breaks MindSpore" in check["detail"] and "<2" in check["detail"]
    assert main(["doctor"]) == 1
    captured = capsys.readouterr()
    assert "FAIL  numpy" in captured.out and "broken: numpy" in captured.err


@pytest.mark.parametrize("version, status, says", [
    ("1.10.1", "FAIL", "vit_ms needs MindSpore 2.0 or newer, found 1.10.1"),
    ("2.0.0", "ok", "2.0.0, tested (doctor, the smoke test, a compiled training step, notebooks 01 to 03 run"),
    ("2.2.14", "note", "2.2.14, not tested but expected to work (between the tested versions: 2.0.0 (Python 3.9)"),
    ("2.7.1", "ok", "2.7.1, tested (doctor, the smoke test, the fast tests, the five notebooks under nbval)"),
    ("2.10.0", "ok", "2.10.0, tested (the full test suite)"),
    ("2.11.0rc1", "note", "2.11.0rc1 is newer than the tested versions"),
], ids=["1.10-below-the-floor", "2.0-tested", "2.2-between", "2.7.1-tested", "2.10-tested", "2.11-newer"])
def test_mindspore_version_is_checked_against_the_floor_and_the_tested_versions(monkeypatch, version, status, says):
    monkeypatch.setattr(mindspore, "__version__", version)
    found, check = doctor._mindspore()
    assert check["status"] == status and says in check["detail"], check
    assert (found is None) == (status == "FAIL")              # too old: doctor stops before using it


def test_kernels_report_both_libraries_and_a_missing_onednn(monkeypatch, needs_cpu_kernels):
    from vit_ms.kernels import native

    check = doctor._kernels()
    assert check["status"] == "ok" and "vit_ms_cpu_" in check["detail"] and "vit_ms_dnnl_" in check["detail"]
    monkeypatch.setattr(native, "mindspore_onednn", lambda: None)
    check = doctor._kernels()
    assert check["status"] == "note" and "no oneDNN library (mindspore/lib/libdnnl.so.*)" in check["detail"]
    native.dnnl_library.cache_clear()                    # the next caller builds it again


def test_kernels_switched_off_are_reported(monkeypatch):
    monkeypatch.setenv("VIT_MS_NATIVE", "0")
    check = doctor._kernels()
    assert check["status"] == "note" and "VIT_MS_NATIVE=0" in check["detail"]


def test_kernels_without_a_compiler_are_reported_with_the_fallback(monkeypatch, tmp_path, cpu_only):
    from vit_ms.kernels import native

    monkeypatch.setenv("CXX", "/nonexistent/g++")
    monkeypatch.setenv("VIT_MS_CACHE", str(tmp_path / "cache"))    # nothing built before
    check = doctor._kernels()
    native.library.cache_clear()
    native.dnnl_library.cache_clear()
    if "outside the versions" in check["detail"]:
        pytest.skip(f"the kernels are not used on this MindSpore at all: {check['detail']}")
    assert check["status"] == "note" and "running /nonexistent/g++ failed" in check["detail"]
    assert "(where a kernel is missing: MindSpore's, same results)" in check["detail"]


def test_kernels_on_a_mindspore_they_were_not_tested_on_are_not_used(monkeypatch, cpu_only):
    from vit_ms import kernels

    monkeypatch.setattr(mindspore, "__version__", "2.5.0")      # a cloud image's version, between the tested ones
    check = doctor._kernels()
    assert check["status"] == "note" and check["detail"] == (
        "not used: MindSpore 2.5.0 is outside the versions the C++ kernels were tested on (2.7 to 2.10: 2.7.1 and "
        "2.10.0); models use MindSpore's layers (same results, slower training)")
    assert kernels.use_cpu_kernels() is False
    with pytest.raises(ValueError, match=r"cpu_kernels=True: MindSpore 2.5.0 is outside the versions"):
        kernels.use_cpu_kernels(True)
