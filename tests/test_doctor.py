"""python -m vit_ms doctor: what it reports, and the non-zero exit when something the course needs is broken."""
import os
import subprocess
import sys

import mindspore
import numpy

from vit_ms import doctor
from vit_ms.cli import main


def by_name(checks):
    return {c["check"]: c for c in checks}


def test_doctor_command_reports_every_check(tmp_path):
    done = subprocess.run([sys.executable, "-m", "vit_ms", "doctor", "--root", str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, GLOG_v="3"))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for line in (f"mindspore              {mindspore.__version__}, tested: 2.7 to 2.10",
                 f"numpy                  {numpy.__version__}", "backend in use: CPU; MindSpore sees: CPU",
                 "installed on platform [CPU] successfully", "C++ kernels built", "runtime_num_threads",
                 "python -m vit_ms download dataset", "python -m vit_ms download checkpoint"):
        assert line in out, line
    assert str(tmp_path / "data" / "dataset") in out                      # where the notebooks look


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


def test_mindspore_older_than_tested_fails_and_newer_is_a_note(monkeypatch):
    monkeypatch.setattr(mindspore, "__version__", "2.6.0")
    _, check = doctor._mindspore()
    assert check["status"] == "FAIL" and "older than vit_ms was tested with" in check["detail"]
    monkeypatch.setattr(mindspore, "__version__", "2.11.0rc1")
    _, check = doctor._mindspore()
    assert check["status"] == "note" and "newer than tested" in check["detail"]


def test_kernels_report_both_libraries_and_a_missing_onednn(monkeypatch):
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
