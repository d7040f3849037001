"""Which MindSpore vit_ms accepts (vit_ms.versions), and the decisions a model takes from the device when it is built:
the C++ CPU kernels only on the MindSpore versions they were tested on, ops.flash_attention_score only where the
Ascend chip has it (the device facts are faked here, on the CPU)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms

from vit_ms import device, kernels, versions
from vit_ms.model import Attention, VisionTransformer

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(image_size=32, patch_size=16, embed_dim=64, depth=2, num_heads=2, num_classes=3)  # head_dim 32


@pytest.mark.parametrize("text, parsed", [("2.7.1", (2, 7, 1)), ("2.10.0", (2, 10, 0)), ("2.11.0rc1", (2, 11, 0)),
                                          ("2.0", (2, 0, 0)), ("2.3.0-beta", (2, 3, 0))])
def test_versions_are_compared_as_numbers(text, parsed):
    assert versions.parse(text) == parsed
    assert versions.parse("2.10.0") > versions.parse("2.9.9")        # not as strings


def test_a_mindspore_below_the_floor_raises_a_typed_error_naming_both_versions():
    with pytest.raises(versions.MindSporeVersionError, match=r"vit_ms needs MindSpore 2.0 or newer, found 1.10.1"):
        versions.require_mindspore("1.10.1")
    assert versions.require_mindspore("2.0.0") == (2, 0, 0)


@pytest.mark.slow
def test_building_a_model_on_a_too_old_mindspore_raises_before_anything_runs():
    script = "import mindspore\nmindspore.__version__ = '1.10.1'\nimport vit_ms\nvit_ms.create_model('vit_ti_16')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, GLOG_v="3"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        "vit_ms.versions.MindSporeVersionError: vit_ms needs MindSpore 2.0 or newer, found 1.10.1")


@pytest.mark.parametrize("version, used", [("2.0.0", False), ("2.6.0", False), ("2.7.1", True), ("2.9.0", True),
                                           ("2.10.0", True), ("2.11.0", False)])
def test_cpu_kernels_only_on_the_versions_they_were_tested_on(monkeypatch, version, used):
    monkeypatch.setattr(ms, "__version__", version)
    monkeypatch.setattr(device, "_chosen", "CPU")
    monkeypatch.delenv("VIT_MS_NATIVE", raising=False)
    assert (versions.kernels_reason(version) is None) == used
    assert kernels.use_cpu_kernels() is used
    model = VisionTransformer(**SMALL)
    assert model.cpu_kernels is used
    assert (type(model.norm).__module__ == "vit_ms.kernels.layers") is used   # else MindSpore's nn.LayerNorm


def fake_device(monkeypatch, target, chip, has_op=True):
    """Make a model built now believe it runs on ``target`` with that Ascend ``chip`` (soc name)."""
    monkeypatch.setattr(device, "device_facts", lambda: (target, chip, has_op))
    monkeypatch.setattr(device, "_chosen", target)
    monkeypatch.setattr(kernels, "current_device", lambda: target)


@pytest.mark.parametrize("target, chip, has_op, expected, why", [
    ("Ascend", "ascend910b", True, True, "ascend910b with ops.flash_attention_score"),
    ("Ascend", "ascend910_93", True, True, "ascend910_93 with ops.flash_attention_score"),
    ("Ascend", "ascend910", True, False, "this Ascend chip (ascend910) has no flash-attention kernel"),
    ("Ascend", None, True, False, "this Ascend chip (unknown) has no flash-attention kernel"),
    ("Ascend", "ascend910b", False, False, "has no ops.flash_attention_score"),
    ("GPU", None, True, False, "Ascend only (this model runs on GPU)"),
    ("CPU", None, True, False, "Ascend only (this model runs on CPU)"),
], ids=["910B", "910C", "910A", "unknown-chip", "old-mindspore", "GPU", "CPU"])
def test_flash_attention_is_decided_from_the_device_when_the_model_is_built(monkeypatch, target, chip, has_op,
                                                                           expected, why):
    fake_device(monkeypatch, target, chip, has_op)
    used, reason = device.flash_attention_support()
    assert used is expected and why in reason
    model = VisionTransformer(**SMALL)
    assert model.flash_attention is expected and model.cpu_kernels is (target == "CPU")
    assert [block.attn.flash_attention for block in model.blocks] == [expected] * SMALL["depth"]


def test_flash_attention_needs_a_head_width_the_kernel_takes_and_no_attention_dropout(monkeypatch):
    fake_device(monkeypatch, "Ascend", "ascend910b")
    assert Attention(64, num_heads=2).flash_attention is True           # head_dim 32
    assert Attention(48, num_heads=2).flash_attention is False          # head_dim 24: not a multiple of 16
    assert Attention(64, num_heads=2, attn_drop=0.1).flash_attention is False
    assert VisionTransformer(**dict(SMALL, embed_dim=48)).flash_attention is False


def test_the_decision_is_kept_by_the_model_after_the_device_changes(monkeypatch):
    """Decided once, at build: a model built for a 910B keeps the flash path (its graph does not change under it),
    and a model built on the CPU computes the plain attention, whose logits do not depend on the fake device."""
    np.random.seed(0)
    plain = VisionTransformer(**SMALL)
    fake_device(monkeypatch, "Ascend", "ascend910b")
    np.random.seed(0)
    flash = VisionTransformer(**SMALL)
    monkeypatch.undo()
    assert flash.flash_attention is True and plain.flash_attention is False
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    plain.set_train(False)
    flash.set_train(False)
    # float32 inputs: the flash branch is taken only under mixed precision (float16), so on the CPU both compute alike
    np.testing.assert_allclose(flash(x).asnumpy(), plain(x).asnumpy(), rtol=1e-5, atol=1e-6)


class OldStyleGELU:
    """nn.GELU as MindSpore 2.0 has it: a bool, and the chosen form's operators built in __init__."""

    def __init__(self, approximate=True):
        self.approximate = approximate
        self.ops = "tanh ops" if approximate else "erf ops"


def test_gelu_form_on_an_old_mindspore_rebuilds_the_cell_only_when_the_form_changes():
    from vit_ms.versions import set_gelu_form

    gelu = OldStyleGELU(approximate=False)
    set_gelu_form(gelu, False)                 # same form: a string "none" here would read as True on MindSpore 2.0
    assert gelu.approximate is False and gelu.ops == "erf ops"
    set_gelu_form(gelu, True)
    assert gelu.approximate is True and gelu.ops == "tanh ops"


def test_gelu_form_switch_gives_the_outputs_of_a_model_built_with_that_form():
    import mindspore as ms
    from vit_ms.model import VisionTransformer

    x = ms.Tensor(np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32))
    outputs = {}
    for built, switched in ((False, True), (True, True)):
        ms.set_seed(0)
        model = VisionTransformer(image_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=3,
                                  gelu_approximate=built, cpu_kernels=False)
        model.set_train(False)
        model.set_numerics(gelu_approximate=switched)
        outputs[built] = model(x).asnumpy()
    np.testing.assert_array_equal(outputs[False], outputs[True])
