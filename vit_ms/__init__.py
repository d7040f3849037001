"""vit_ms: the Vision Transformer (ViT) in MindSpore, for learning by building, training and looking inside."""
from .device import set_device
from .factory import (MODEL_CONFIGS, create_model, list_models, vit_b_16, vit_b_32, vit_h_14, vit_l_16, vit_l_32,
                      vit_s_16, vit_ti_16)
from .model import Attention, Block, DropPath, Mlp, PatchEmbed, VisionTransformer, count_params
from .weights import LAYOUTS, convert, load_pretrained, set_numerics
from .pos_embed import pos_embed_similarity, resample_pos_embed, sincos_2d_pos_embed

__version__ = "0.1.0"
