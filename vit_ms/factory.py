"""Named ViT sizes (paper / timm dimensions), the names mindcv and timm give them, and ``create_model``."""
import difflib
import fnmatch
from pathlib import Path

from .config import MODEL_CONFIGS
from .download import COURSE_CHECKPOINT_URL, download
from .model import VisionTransformer
from .runtime import cache_dir
from .weights import load_pretrained

_TIMM_SIZES = {"ti": "tiny", "s": "small", "b": "base", "l": "large", "h": "huge"}


def _aliases():
    """{alias: (vit_ms name, image size)}: mindcv's names (vit_b_16_224) and timm's (vit_base_patch16_224)."""
    aliases = {}
    for name in MODEL_CONFIGS:
        _, size, patch = name.split("_")
        for image_size in (224, 384):
            aliases[f"{name}_{image_size}"] = (name, image_size)
            aliases[f"vit_{_TIMM_SIZES[size]}_patch{patch}_{image_size}"] = (name, image_size)
    return aliases


ALIASES = _aliases()


def list_models(pattern=None):
    """Names ``create_model`` accepts. Without a pattern: vit_ms's own names. With a glob pattern (as timm's
    ``list_models("vit_base*")``): every accepted name that matches, mindcv's and timm's included."""
    if pattern is None:
        return list(MODEL_CONFIGS)
    return [name for name in (*MODEL_CONFIGS, *ALIASES) if fnmatch.fnmatchcase(name, pattern)]


def _resolve(name):
    """(vit_ms name, image size implied by the name or None)."""
    if isinstance(name, str) and name in MODEL_CONFIGS:
        return name, None
    if isinstance(name, str) and name in ALIASES:
        return ALIASES[name]
    close = difflib.get_close_matches(name, [*MODEL_CONFIGS, *ALIASES], n=5, cutoff=0.5) if isinstance(name, str) else []
    hint = f" (closest: {', '.join(close)})" if close else ""
    raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}, and mindcv's and timm's names "
                     f"for them (list_models('*')){hint}")


def course_checkpoint(url=None, timeout=15.0):
    """Path of the course's ViT-B/16 checkpoint in the cache (``$VIT_MS_CACHE/checkpoints``, default
    ``~/.cache/vit_ms``), downloaded first if it is not there (resumable, with a progress bar). Offline it raises
    ConnectionError naming the URL and the path where the file is expected."""
    url = url or COURSE_CHECKPOINT_URL
    return download(url, cache_dir() / "checkpoints" / Path(url).name, timeout=timeout)


def create_model(name, pretrained=None, numerics="source", **overrides):
    """Build a named ViT; any ``VisionTransformer`` argument can be overridden (num_classes, image_size, ...).

    ``name``: a vit_ms name (``list_models()``), or mindcv's / timm's (``vit_b_16_224``, ``vit_base_patch16_384``),
    which also set the image size. ``pretrained``: a weights file (any layout ``vit_ms.load_pretrained`` reads), or
    True for the course's ViT-B/16 224 checkpoint (downloaded into the cache on first use). ``numerics``: "source"
    takes LayerNorm epsilon, GELU form and input mean/std from the weights' origin; "model" keeps the ones given here.
    """
    base, image_size = _resolve(name)
    config = dict(MODEL_CONFIGS[base], **({"image_size": image_size} if image_size else {}))
    config.update(overrides)
    if pretrained is True:
        if base != "vit_b_16" or config.get("image_size", 224) != 224:
            raise ValueError(f"pretrained=True loads the course's ViT-B/16 224x224 checkpoint; {name!r} with "
                             f"image_size={config.get('image_size', 224)} has no published vit_ms weights: pass "
                             f"the path of a weights file as pretrained=...")
        pretrained = course_checkpoint()
    elif pretrained is False:
        pretrained = None
    model = VisionTransformer(**config)
    if pretrained is not None:
        load_pretrained(model, pretrained, numerics=numerics)
    return model


def _named(name):
    def build(**overrides):
        return create_model(name, **overrides)
    build.__name__ = name
    build.__doc__ = f"{name}: {MODEL_CONFIGS[name]}; keyword arguments override the configuration."
    return build


vit_ti_16, vit_s_16, vit_b_16, vit_b_32, vit_l_16, vit_l_32, vit_h_14 = (_named(n) for n in MODEL_CONFIGS)
