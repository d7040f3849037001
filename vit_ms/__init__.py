"""vit_ms: the Vision Transformer (ViT) in MindSpore, for learning by building, training and looking inside.

The public names below are imported on first use, so that ``import vit_ms`` (and the command line's ``--help``)
does not start MindSpore.
"""
import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "set_device": "device",
    **dict.fromkeys(("MODEL_CONFIGS", "create_model", "list_models", "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16",
                     "vit_l_32", "vit_s_16", "vit_ti_16"), "factory"),
    **dict.fromkeys(("Attention", "Block", "DropPath", "Mlp", "PatchEmbed", "VisionTransformer", "count_params"),
                    "model"),
    **dict.fromkeys(("LAYOUTS", "convert", "load_pretrained", "set_numerics"), "weights"),
    **dict.fromkeys(("pos_embed_similarity", "position_structure", "resample_pos_embed", "sincos_2d_pos_embed"),
                    "pos_embed"),
    **dict.fromkeys(("attention_distance", "embedding_filters", "mean_attention_distance",
                     "uniform_attention_distance"), "probe"),
    "summary": "overview",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'vit_ms' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
