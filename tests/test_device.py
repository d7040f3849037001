"""Backend selection."""
import pytest

import mindspore as ms

from vit_ms.device import set_device, to_numpy


def _accelerator_present():
    try:
        return any(ms.hal.is_available(t) for t in ("Ascend", "GPU"))
    except Exception:
        return False


@pytest.fixture
def fresh_process(monkeypatch):
    """set_device as in a process that has not printed its device line yet (earlier tests in this process did)."""
    from vit_ms import device

    monkeypatch.setattr(device, "_announced", None)


@pytest.mark.skipif(_accelerator_present(), reason="this MindSpore build has an accelerator")
def test_auto_picks_cpu_without_an_accelerator(fresh_process, capsys):
    assert set_device("auto") == "CPU"
    assert capsys.readouterr().out == f"vit_ms: using CPU (MindSpore {ms.__version__})\n"
    assert ms.get_context("device_target") == "CPU"


def test_the_device_line_is_printed_once_per_process(fresh_process, capsys):
    """A notebook selects the device in its first cells, then evaluate() and train() select it again."""
    set_device("cpu", verbose=False)
    assert capsys.readouterr().out == ""                    # a silent selection does not count as the line
    for device in ("auto", "CPU", "auto"):
        set_device(device)
    assert capsys.readouterr().out.count("vit_ms: using ") == 1


def test_a_fresh_process_prints_the_device_line_once():
    """Without touching the module's state: a new interpreter, as a notebook kernel is."""
    import subprocess
    import sys

    script = ("import vit_ms\nfrom vit_ms.evaluate import set_device\n"
              "for name in ('auto', 'cpu', 'auto'):\n    vit_ms.set_device(name)\nset_device('auto')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("vit_ms: using ") == 1, done.stdout


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


def _train_step():
    """A small ViT training step (a few tenths of a second on a 2-core CPU) and its inputs. MindSpore returns from
    such a call before the step has finished; reading the loss then waits for the rest."""
    import numpy as np
    from mindcv.loss import create_loss

    from vit_ms.factory import create_model
    from vit_ms.optim import make_optimizer
    from vit_ms.train import make_train_step

    np.random.seed(0)
    model = create_model("vit_ti_16", depth=2, num_classes=10)
    model.set_train(True)
    step = make_train_step(model, create_loss(name="CE"), make_optimizer(model, 1e-4, 0.05), 1.0, 1)
    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((8, 3, 224, 224), dtype=np.float32))
    labels = ms.Tensor(rng.integers(0, 10, 8).astype(np.int32))
    return step, images, labels


def test_to_numpy_reads_the_result_while_the_caller_sleeps():
    import time

    set_device("CPU", verbose=False)
    step, images, labels = _train_step()
    first = step(images, labels).asnumpy()                 # compiled
    wall, cpu = time.perf_counter(), time.thread_time()
    loss = to_numpy(step(images, labels))
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    assert loss.shape == () and loss.dtype == first.dtype and 0 < loss < first  # the loss of the second step
    assert wall > 0.1, f"the step ran {wall:.3f} s: too short to tell waiting from spinning"
    # MindSpore's own wait (asnumpy) spins in the calling thread for most of the step; to_numpy's caller sleeps
    assert cpu < 0.25 * wall, f"calling thread used {cpu:.3f} s of CPU in {wall:.3f} s"


def test_to_numpy_waits_on_a_lowest_priority_thread():
    import os

    set_device("CPU", verbose=False)
    to_numpy(ms.Tensor([1.0]))
    if not hasattr(os, "SCHED_IDLE"):
        pytest.skip("no SCHED_IDLE on this system")
    from vit_ms import device

    assert device._waiter.submit(lambda: os.sched_getscheduler(0)).result() == os.SCHED_IDLE
    assert os.sched_getscheduler(0) != os.SCHED_IDLE        # the caller keeps its priority


def test_to_numpy_refuses_what_is_not_a_tensor():
    with pytest.raises(TypeError, match="expected a MindSpore Tensor, got list"):
        to_numpy([1.0, 2.0])


def test_building_models_does_not_repeat_mindspore_backend_warnings():
    """Each model build asks which backend it will run on; the answer is looked up once per process and MindSpore's
    "Backend GPU is not available" warnings (one pair per question) stay out of a learner's notebook."""
    import os
    import subprocess
    import sys

    script = ("import vit_ms\nfor _ in range(3):\n    vit_ms.create_model('vit_ti_16', depth=2, image_size=32)\n"
              "print('built')")
    env = {k: v for k, v in os.environ.items() if k != "GLOG_v"}        # a plain notebook: no GLOG_v set
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "built", done.stderr[-2000:]
    assert "is not available" not in done.stderr
