"""Which MindSpore versions vit_ms runs on, and which of them were tested.

MindSpore is not among the package's requirements (as in mindcv): its build depends on the device (CPU, the GPU's
CUDA, the Ascend card's CANN), so the cloud image or the learner installs it, and ``pip install -e .`` leaves it in
place. vit_ms checks the version instead: below ``MINIMUM`` importing a model raises ``MindSporeVersionError``;
``python -m vit_ms doctor`` says whether the version found was tested. This module does not import MindSpore.
"""

MINIMUM = (2, 0)
# the MindSpore versions vit_ms was tested on: (version, Python, what ran there); versions in between are expected to
# work (the cloud images' 2.2.14 to 2.7.1 among them)
TESTED = (("2.0.0", "3.9", "doctor, the smoke test, a compiled training step, notebooks 01 to 03 run to the end"),
          ("2.7.1", "3.9", "doctor, the smoke test, the fast tests, the five notebooks under nbval"),
          ("2.10.0", "3.11", "the full test suite"))
# vit_ms's C++ CPU kernels (vit_ms.kernels) are used on MindSpore 2.7 to 2.10, the range whose ends they were tested
# on (2.7.1, 2.10.0); elsewhere a model keeps MindSpore's layers (on 2.0 a compiled step with them fails MindSpore's
# Reshape check)
KERNELS_TESTED = ((2, 7), (2, 10))


class MindSporeVersionError(RuntimeError):
    """The installed MindSpore is older than vit_ms supports."""


def parse(text):
    """(major, minor, patch) of a version string such as "2.7.1" or "2.11.0rc1"; missing parts are 0."""
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = ""
        for c in piece:
            if not c.isdigit():
                break
            digits += c
        parts.append(int(digits or 0))
    return tuple(parts + [0] * (3 - len(parts)))


def _minor(version):
    return ".".join(map(str, version[:2]))


def tested_text():
    """"2.0.0 (Python 3.9), 2.7.1 (Python 3.9), 2.10.0 (Python 3.11)"."""
    return ", ".join(f"{v} (Python {p})" for v, p, _ in TESTED)


def require_mindspore(version):
    """Raise MindSporeVersionError if ``version`` (a string) is below ``MINIMUM``; return it parsed."""
    found = parse(version)
    if found[:2] < MINIMUM:
        raise MindSporeVersionError(f"vit_ms needs MindSpore {_minor(MINIMUM)} or newer, found {version}; install the "
                                    f"MindSpore build for your device (mindspore.cn/install), e.g. 2.7.1; tested: "
                                    f"{tested_text()}")
    return found


def describe(version):
    """("ok" | "note" | "FAIL", text): whether ``version`` was tested, is expected to work, or is too old."""
    try:
        found = require_mindspore(version)
    except MindSporeVersionError as err:
        return "FAIL", str(err)
    tested = [parse(v) for v, _, _ in TESTED]
    if found in tested:
        scope = dict((parse(v), what) for v, _, what in TESTED)[found]
        return "ok", f"{version}, tested ({scope}); tested versions: {tested_text()}"
    if found < max(tested):
        return "note", (f"{version}, not tested but expected to work (between the tested versions: "
                        f"{tested_text()})")
    return "note", (f"{version} is newer than the tested versions ({tested_text()}): it will probably work; report "
                    f"problems")


def kernels_reason(version):
    """None if vit_ms's C++ CPU kernels were tested on this MindSpore ``version``, else why they are not used."""
    low, high = KERNELS_TESTED
    if low <= parse(version)[:2] <= high:
        return None
    return (f"MindSpore {version} is outside the versions the C++ kernels were tested on ({_minor(low)} to "
            f"{_minor(high)}: 2.7.1 and 2.10.0)")


def set_gelu_form(gelu, approximate):
    """Switch an ``nn.GELU`` cell to the tanh form (``approximate`` True) or the exact one. Newer MindSpore (2.7, 2.10)
    keeps the form as "tanh"/"none" and reads it at every call; older MindSpore (2.0) keeps a bool and builds only that
    form's operators in ``__init__``, so there a change initialises the cell again."""
    if isinstance(gelu.approximate, str):
        gelu.approximate = "tanh" if approximate else "none"
    elif bool(gelu.approximate) != bool(approximate):
        type(gelu).__init__(gelu, approximate=bool(approximate))
