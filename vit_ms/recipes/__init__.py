"""Training recipes as YAML files, each defined once (mindcv keeps its recipes as ``configs/*.yaml`` the same way).

A recipe holds ``TrainConfig`` fields. ``python -m vit_ms train --config demo`` (a shipped name) or
``--config my.yaml`` (a file) reads one; flags given on the command line override its values.
"""
import dataclasses
import typing
from pathlib import Path

from ..config import TrainConfig

RECIPE_DIR = Path(__file__).parent
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def recipe_names():
    """The shipped recipes: demo (the `demo` command), notebook (notebooks 02-05), course (ViT-B/16 fine-tuning)."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def recipe_path(name_or_path):
    """The file of a shipped recipe name, or the given YAML file; FileNotFoundError names both choices."""
    text = str(name_or_path)
    if text in recipe_names():
        return RECIPE_DIR / f"{text}.yaml"
    path = Path(text)
    if path.is_file():
        return path
    raise FileNotFoundError(f"no recipe {text!r}: expected a shipped recipe ({', '.join(recipe_names())}) "
                            f"or a YAML file, and {path} is not a file")


def load_recipe(name_or_path):
    """The recipe's settings as a dict of TrainConfig fields, each checked for its name and type."""
    import yaml

    path = recipe_path(name_or_path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"recipe {path} is not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(values, dict):
        raise ValueError(f"recipe {path} must be a mapping of settings (name: value), got {type(values).__name__}")
    return {key: _checked(path, key, value) for key, value in values.items()}


def _checked(path, key, value):
    """One recipe value, as the type its TrainConfig field has."""
    if key not in _FIELDS:
        raise ValueError(f"recipe {path}: unknown setting {key!r}; expected one of {', '.join(_FIELDS)}")
    kind = _FIELDS[key].type
    optional = typing.get_origin(kind) is typing.Union and type(None) in typing.get_args(kind)
    if optional:
        if value is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if key == "crop_scale":
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and
                all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise ValueError(f"recipe {path}: crop_scale must be a list of two numbers [min, max], got {value!r}")
        return tuple(float(v) for v in value)
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}[kind]
    if not ok(value):
        expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]
        raise ValueError(f"recipe {path}: {key} must be {expected}{' or null' if optional else ''}, got {value!r}")
    return float(value) if kind is float else value
