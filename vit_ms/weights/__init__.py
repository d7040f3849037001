"""Published ViT weights: read them (``files``), translate their layout (``layouts``), load them strictly into a
``VisionTransformer`` (``load``), or convert them to a vit_ms file (``convert``)."""
from ..config import LAYOUTS
from .convert import convert
from .files import atomic_save, read_weights
from .layouts import detect_layout, source_numerics, split_training_state, to_vit_ms
from .load import load_pretrained, set_numerics

__all__ = ["LAYOUTS", "atomic_save", "convert", "detect_layout", "load_pretrained", "read_weights", "set_numerics",
           "source_numerics", "split_training_state", "to_vit_ms"]
