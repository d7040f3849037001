"""The package's structure: no import cycle, a command line that starts without MindSpore and documents every flag,
one switch for the CPU kernels, and checkpoints written before the redesign still load."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).with_name("data")


def import_graph(package_dir):
    """{module: set of package modules it imports} for every .py file under package_dir, from its syntax tree.
    Imports inside functions count; those under ``if __name__ == "__main__":`` do not (they run only when the file
    is a script, never on import)."""
    package_dir = Path(package_dir)
    base = package_dir.name
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = (base,) + path.relative_to(package_dir).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)

    def resolve(name):  # the module itself, or the package that defines the name
        return name if name in modules else None

    graph = {}
    for name, (path, is_package) in modules.items():
        here = name.split(".") if is_package else name.split(".")[:-1]
        edges = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))  # script blocks count too: msrun runs a file as a script
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                anchor = ".".join(here[:len(here) - node.level + 1]) if node.level else ""
                source = ".".join(p for p in (anchor, node.module or "") if p)
                targets = [resolve(f"{source}.{alias.name}") or source for alias in node.names]
            else:
                continue
            edges |= {t for t in map(resolve, targets) if t and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph(ROOT / "vit_ms")
    assert {"vit_ms.model", "vit_ms.kernels", "vit_ms.weights.load", "vit_ms.cli"} <= graph.keys()
    assert "vit_ms.kernels" in graph["vit_ms.model"] and "vit_ms.model" in graph["vit_ms.weights.load"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_check_finds_a_cycle(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")   # inside a function: still counted
    (package / "c.py").write_text("import pkg.a\n")
    assert find_cycle(import_graph(package)) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("")
    (package / "d.py").write_text("if __name__ == '__main__':\n    import pkg.e\n")   # a script block counts too
    (package / "e.py").write_text("from . import d\n")
    assert find_cycle(import_graph(package)) == ["pkg.d", "pkg.e", "pkg.d"]


def test_the_model_file_holds_the_diagram_and_no_kernels():
    source = (ROOT / "vit_ms" / "model.py").read_text(encoding="utf-8")
    classes = [node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]
    assert classes == ["PatchEmbed", "Attention", "Mlp", "DropPath", "Block", "VisionTransformer"]
    assert len(source.splitlines()) <= 350
    for kernel_detail in ("bprop", "ops.Custom", "ops.MatMul(", "native"):
        assert kernel_detail not in source, kernel_detail


COMMANDS = ("demo", "train", "eval", "predict", "make-sample-data", "download", "build-subset", "convert", "bench",
            "doctor")


def test_help_does_not_start_mindspore():
    script = ("import sys\nfrom vit_ms.cli import main\n"
              f"for argv in [['--help']] + [[c, '--help'] for c in {COMMANDS!r}]:\n"
              "    try:\n        main(argv)\n    except SystemExit as exit:\n        assert exit.code == 0, argv\n"
              "print('mindspore' in sys.modules, 'numpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False False"


def test_every_flag_has_help_with_its_default():
    import argparse

    from vit_ms.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == set(COMMANDS)
    for name, sub in commands.items():
        formatter = sub.formatter_class(prog=name)
        for action in sub._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            text = formatter._get_help_string(action) % {"default": action.default}
            assert action.help and "default" in text, f"{name} {action.option_strings[0]}: {text!r}"


def test_usage_errors_are_one_error_line_and_exit_status_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "vit_ms", "eval", "--data", str(tmp_path / "nothing"),
                           "--checkpoint", str(tmp_path / "missing.ckpt")], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, GLOG_v="3"))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "missing.ckpt" in lines[-1]
    assert "Traceback" not in done.stderr


def _paths_in_subprocess(script, **env):
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, GLOG_v="3", **env))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_model_built_before_set_device_takes_the_same_path_as_one_built_after(cpu_only):
    import mindspore

    from vit_ms.versions import kernels_reason

    if kernels_reason(mindspore.__version__):
        pytest.skip(f"models take MindSpore's layers here: {kernels_reason(mindspore.__version__)}")
    script = ("import vit_ms\nsmall = dict(image_size=16, patch_size=8, embed_dim=8, depth=1, num_heads=2)\n"
              "before = vit_ms.VisionTransformer(**small)\nvit_ms.set_device('auto', verbose=False)\n"
              "after = vit_ms.VisionTransformer(**small)\n"
              "print(before.cpu_kernels, after.cpu_kernels, type(before.norm).__module__)")
    assert _paths_in_subprocess(script) == "True True vit_ms.kernels.layers"      # this machine has only a CPU
    assert _paths_in_subprocess(script, VIT_MS_NATIVE="0") == "False False mindspore.nn.layer.normalization"


def test_before_set_device_the_switch_expects_the_accelerator_auto_will_choose(monkeypatch):
    from vit_ms import device, kernels

    monkeypatch.setattr(device, "_chosen", None)
    monkeypatch.setattr(device, "_available", lambda target: target in ("GPU", "CPU"))   # as on a GPU machine
    assert device.current_device() == "GPU"
    assert kernels.use_cpu_kernels() is False              # the GPU path, as after set_device("auto")
    with pytest.raises(ValueError, match="CPU kernels run on the CPU only, but this model would run on GPU"):
        kernels.use_cpu_kernels(True)
    monkeypatch.setattr(device, "_chosen", "CPU")          # set_device("CPU") chose the CPU
    assert kernels.use_cpu_kernels() is True and kernels.use_cpu_kernels(False) is False
    with pytest.raises(TypeError, match="cpu_kernels must be True, False or None"):
        kernels.use_cpu_kernels("yes")


def test_checkpoints_written_before_the_redesign_still_load():
    import mindspore as ms

    from vit_ms.checkpoint import load_model

    model, classes = load_model(DATA / "vit_ms_0.1_tiny.ckpt")   # written by vit_ms 0.1.0 before the redesign
    reference = np.load(DATA / "vit_ms_0.1_tiny_logits.npz")
    model.set_train(False)
    assert classes == ["a", "b", "c"] and model.norm_eps == 1e-7 and model.gelu_approximate is True
    np.testing.assert_allclose(model(ms.Tensor(reference["x"])).asnumpy(), reference["logits"], rtol=1e-5, atol=1e-6)


def _vermin(*paths):
    vermin = Path(sys.executable).with_name("vermin")
    if not vermin.is_file():
        pytest.skip("vermin (requirements.txt installs it) is not installed in this environment")
    return subprocess.run([str(vermin), "-t=3.9-", "--violations", "--no-tips", "--eval-annotations", *map(str, paths)],
                          capture_output=True, text=True, timeout=300)


def test_the_package_runs_on_python_3_9_as_pyproject_declares():
    """pyproject.toml says requires-python >= 3.9: vermin checks every module's syntax and library use."""
    assert 'requires-python = ">=3.9' in (ROOT / "pyproject.toml").read_text()
    done = _vermin(ROOT / "vit_ms")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_python_3_9_check_can_fail(tmp_path):
    (tmp_path / "new.py").write_text("def f(x):\n    match x:\n        case 1:\n            return 'one'\n")
    assert _vermin(tmp_path / "new.py").returncode != 0


def test_the_installed_console_script_runs_the_cli():
    script = Path(sys.executable).with_name("vit-ms")      # installed by `pip install -e .` (requirements.txt)
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "doctor" in done.stdout and "train" in done.stdout


def test_a_wheel_carries_the_class_names_and_the_kernel_sources(tmp_path):
    """Not only an editable checkout works: the built package holds its data files."""
    import zipfile

    import shutil
    from importlib.metadata import version

    if tuple(int(p) for p in version("setuptools").split(".")[:2]) < (61, 0):   # built here without isolation
        pytest.skip(f"pyproject.toml's build needs setuptools>=61, this environment has {version('setuptools')}")

    source = tmp_path / "source"     # a copy: building in the checkout would leave build/ there
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "build", "runs", "data", "notebooks",
                                                                "__pycache__", "*.egg-info"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("vit_ms-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    from vit_ms.kernels import native

    kernel_files = {p.relative_to(ROOT).as_posix() for p in (*native.SOURCES, *native.DNNL_SOURCES, *native.HEADERS)}
    assert {"vit_ms/kernels/csrc/gelu.cc", "vit_ms/kernels/csrc/dnnl/attention.cc",
            "vit_ms/kernels/csrc/vector_math.h"} <= kernel_files      # every file native.py compiles or includes
    assert {"vit_ms/imagenet_class_names.json", "vit_ms/weights/load.py", *kernel_files} <= names
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    # MindSpore is the image's (or requirements.txt's): installing the package must not replace it
    assert "Requires-Dist: numpy<2,>=1.25" in text and "Requires-Dist: mindspore" not in text
    assert "Requires-Python: <3.12,>=3.9" in text
