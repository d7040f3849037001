"""Named model sizes: parameter counts of the published architectures, overrides, and bad names."""
import numpy as np
import pytest

import mindspore as ms

import vit_ms
from vit_ms.factory import MODEL_CONFIGS, create_model, list_models
from vit_ms.model import count_params

# trainable parameters with a 1000-class head, as published for these architectures (timm's counts)
PUBLISHED_COUNTS = {"vit_ti_16": 5_717_416, "vit_s_16": 22_050_664, "vit_b_16": 86_567_656,
                    "vit_b_32": 88_224_232, "vit_l_16": 304_326_632}
TINY = dict(image_size=32, depth=1, num_classes=10)  # a vit_ti_16 that is cheap to build and run


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "vit_l_16" else n
                                  for n in PUBLISHED_COUNTS])   # ViT-L takes seconds to build
def test_parameter_count_matches_the_published_architecture(name):
    model = create_model(name, num_classes=1000)
    total = sum(int(np.prod(p.shape)) for p in model.trainable_params())
    assert total == PUBLISHED_COUNTS[name]
    assert count_params(model) == count_params(model, trainable=False) == total  # no frozen buffers


def test_list_models_names_every_config():
    names = list_models()
    assert names == list(MODEL_CONFIGS)
    assert {"vit_ti_16", "vit_s_16", "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"} <= set(names)


def test_named_builders_and_overrides():
    model = vit_ms.vit_ti_16(image_size=48, num_classes=7, depth=2)
    assert model.config == create_model("vit_ti_16", image_size=48, num_classes=7, depth=2).config
    assert (model.image_size, model.patch_size, model.grid_size, model.embed_dim) == (48, 16, (3, 3), 192)
    assert len(model.blocks) == 2
    assert model.pos_embed.shape == (1, 1 + 9, 192)
    assert model.head.weight.shape == (7, 192)
    assert vit_ms.vit_b_32.__name__ == "vit_b_32"


def test_num_classes_zero_gives_features():
    model = create_model("vit_ti_16", **dict(TINY, num_classes=0))
    model.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32))
    assert model(x).shape == (2, 192)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model 'vit_x_16'; valid names: vit_ti_16, ") as info:
        create_model("vit_x_16")
    assert all(name in str(info.value) for name in list_models())
    with pytest.raises(ValueError, match="unknown model None"):
        create_model(None)


def test_unknown_override_is_named():
    with pytest.raises(TypeError, match="num_class"):
        create_model("vit_ti_16", num_class=10)


@pytest.mark.parametrize("name, base, image_size", [
    ("vit_b_16_224", "vit_b_16", 224), ("vit_b_16_384", "vit_b_16", 384), ("vit_b_32_224", "vit_b_32", 224),
    ("vit_l_16_224", "vit_l_16", 224),                                              # mindcv's names
    ("vit_base_patch16_224", "vit_b_16", 224), ("vit_small_patch16_224", "vit_s_16", 224),
    ("vit_large_patch16_384", "vit_l_16", 384), ("vit_tiny_patch16_384", "vit_ti_16", 384),   # timm's names
])
def test_mindcv_and_timm_names_build_the_same_architecture(name, base, image_size):
    small = dict(depth=1, num_classes=10)  # depth overridden: cheap to build, the rest is the named architecture
    model = create_model(name, **small)
    assert model.config == create_model(base, image_size=image_size, **small).config
    assert model.image_size == image_size


def test_an_explicit_image_size_overrides_the_one_a_name_implies():
    assert create_model("vit_base_patch16_384", image_size=224, depth=1).image_size == 224


def test_list_models_filters_with_a_glob_as_timm_does():
    assert list_models("vit_base*") == ["vit_base_patch16_224", "vit_base_patch16_384", "vit_base_patch32_224",
                                        "vit_base_patch32_384"]
    assert list_models("vit_b_16*") == ["vit_b_16", "vit_b_16_224", "vit_b_16_384"]
    assert {"vit_b_16_224", "vit_l_32_224", "vit_large_patch16_384", "vit_huge_patch14_224"} <= set(list_models("*"))
    assert list_models("resnet*") == []
    from vit_ms.factory import _resolve

    for name in list_models("*"):  # every listed name resolves (checked without building every model)
        assert _resolve(name)[0] in MODEL_CONFIGS


def test_an_unknown_name_suggests_the_closest_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model 'vit_base_patch16_225'.*closest: vit_base_patch16_224"):
        create_model("vit_base_patch16_225")
    with pytest.raises(ValueError, match=r"closest: vit_b_16"):
        create_model("vit_b16")


def test_pretrained_true_is_only_for_the_course_checkpoint():
    with pytest.raises(ValueError, match=r"pretrained=True loads the course's ViT-B/16 224x224 checkpoint; "
                                         r"'vit_l_16' .*pass the path"):
        create_model("vit_l_16", pretrained=True)
    with pytest.raises(ValueError, match=r"'vit_b_16_384' with image_size=384 has no published vit_ms weights"):
        create_model("vit_b_16_384", pretrained=True)
