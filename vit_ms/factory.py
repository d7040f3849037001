"""Named ViT sizes (paper / timm dimensions) and ``create_model``."""
from .model import VisionTransformer
from .weights import load_pretrained

# name -> (patch_size, embed_dim, depth, num_heads)
MODEL_CONFIGS = {
    "vit_ti_16": dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vit_s_16": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_b_16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_b_32": dict(patch_size=32, embed_dim=768, depth=12, num_heads=12),
    "vit_l_16": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    "vit_l_32": dict(patch_size=32, embed_dim=1024, depth=24, num_heads=16),
    "vit_h_14": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16),
}


def list_models():
    """Names accepted by ``create_model``."""
    return list(MODEL_CONFIGS)


def create_model(name, pretrained=None, numerics="source", **overrides):
    """Build a named ViT; any ``VisionTransformer`` argument can be overridden (num_classes, image_size, ...).

    ``pretrained``: path of a checkpoint to load (any layout ``vit_ms.load_pretrained`` understands).
    ``numerics``: "source" takes LayerNorm epsilon, GELU form and input mean/std from the weights' origin;
    "model" keeps the ones given here.
    """
    if not isinstance(name, str) or name not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    model = VisionTransformer(**dict(MODEL_CONFIGS[name], **overrides))
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
