"""Backend selection."""
import pytest

import mindspore as ms

from vit_ms.device import set_device


def _accelerator_present():
    try:
        return any(ms.hal.is_available(t) for t in ("Ascend", "GPU"))
    except Exception:
        return False


@pytest.mark.skipif(_accelerator_present(), reason="this MindSpore build has an accelerator")
def test_auto_picks_cpu_without_an_accelerator(capsys):
    assert set_device("auto") == "CPU"
    assert "using CPU" in capsys.readouterr().out
    assert ms.get_context("device_target") == "CPU"


def test_names_are_case_insensitive_and_verbose_can_be_off(capsys):
    assert set_device("cpu", verbose=False) == "CPU"
    assert capsys.readouterr().out == ""


@pytest.mark.skipif(_accelerator_present(), reason="this MindSpore build has an accelerator")
def test_unavailable_backend_is_refused():
    with pytest.raises(RuntimeError, match=r"device 'GPU' was asked for but this MindSpore installation cannot use it"):
        set_device("GPU", verbose=False)


@pytest.mark.parametrize("device, error, message", [
    ("TPU", ValueError, r"device must be 'auto', 'Ascend', 'GPU', 'CPU'; got 'TPU'"),
    ("", ValueError, r"got ''"),
    (0, TypeError, r"device must be a string.*got 0"),
])
def test_bad_names_raise(device, error, message):
    with pytest.raises(error, match=message):
        set_device(device, verbose=False)
