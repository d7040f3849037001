"""Loading published ViT weights: every layout gives the logits of an independent NumPy forward pass, strictly."""
import json
import logging
import re

import numpy as np
import pytest

import mindspore as ms
from mindspore import nn
from safetensors.numpy import save_file

import vit_ms
from numpy_vit import forward, from_vit_ms, random_params, to_vit_ms
from vit_ms.__main__ import main
from vit_ms.checkpoint import save_model
from vit_ms.model import VisionTransformer
from vit_ms.pos_embed import resample_pos_embed
from vit_ms.weights import detect_layout, load_pretrained, read_weights, set_numerics

SMALL = dict(image_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=10)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
# what each source was trained with: (LayerNorm eps, tanh GELU?, (mean, std))
SOURCE = {"tutorial": (1e-7, True, IMAGENET), "mindcv": (1e-7, True, IMAGENET), "timm": (1e-6, False, HALF),
          "huggingface": (1e-12, False, HALF), "google": (1e-6, False, HALF)}


def small_params(seed=0, **overrides):
    cfg = dict(image_size=32, patch_size=8, dim=64, depth=2, num_heads=4, num_classes=10)
    cfg.update(overrides)
    return random_params(np.random.default_rng(seed), **cfg)


def images(size=32, batch=2, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


def logits(model, x):
    model.set_train(False)
    return model(ms.Tensor(x)).asnumpy()


def assert_matches(actual, expected, rtol=1e-5):
    err = np.abs(actual - expected).max() / np.abs(expected).max()
    assert err <= rtol, f"relative error {err:.2e} > {rtol:.0e}"
    top = min(5, expected.shape[-1])
    np.testing.assert_array_equal(np.argsort(-actual, axis=-1)[:, :top], np.argsort(-expected, axis=-1)[:, :top])


def params_of(model):
    return {p.name: p.asnumpy() for p in model.get_parameters()}


def save_ckpt(path, named_arrays, append_dict=None):
    ms.save_checkpoint([{"name": n, "data": ms.Tensor(a)} for n, a in named_arrays.items()], str(path),
                       append_dict=append_dict)
    return path


def rename(weights, rules):
    """Apply the first matching (regex, template) of ``rules`` to every name (fully matched)."""
    out = {}
    for name, value in weights.items():
        for pattern, template in rules:
            if re.fullmatch(pattern, name):
                name = re.sub(pattern, template, name)
                break
        out[name] = value
    return out


# vit_ms -> tutorial names, written from the tutorial's model: layers[i] = [Residual([norm1, Attention(qkv, out)]),
# Residual([norm2, FeedForward(dense1, dense2)])], then norm and the head "dense"
TUTORIAL_NAMES = [(r"cls_token", "cls"), (r"pos_embed", "pos_embedding"),
                  (r"patch_embed\.proj\.(\w+)", r"patch_embedding.conv.\1"),
                  (r"blocks\.(\d+)\.norm1\.(\w+)", r"transformer.layers.\1.0.cell.0.\2"),
                  (r"blocks\.(\d+)\.attn\.qkv\.(\w+)", r"transformer.layers.\1.0.cell.1.qkv.\2"),
                  (r"blocks\.(\d+)\.attn\.proj\.(\w+)", r"transformer.layers.\1.0.cell.1.out.\2"),
                  (r"blocks\.(\d+)\.norm2\.(\w+)", r"transformer.layers.\1.1.cell.0.\2"),
                  (r"blocks\.(\d+)\.mlp\.fc1\.(\w+)", r"transformer.layers.\1.1.cell.1.dense1.\2"),
                  (r"blocks\.(\d+)\.mlp\.fc2\.(\w+)", r"transformer.layers.\1.1.cell.1.dense2.\2"),
                  (r"head\.(\w+)", r"dense.\1")]
TIMM_NAMES = [(r"(.*norm\d?)\.gamma", r"\1.weight"), (r"(.*norm\d?)\.beta", r"\1.bias")]


def hf_weights(params):
    """Hugging Face ViTForImageClassification names, separate query/key/value Dense weights [out, in]."""
    p, out = params, {}
    out["vit.embeddings.cls_token"] = p["cls"]
    out["vit.embeddings.position_embeddings"] = p["Transformer/posembed_input/pos_embedding"]
    out["vit.embeddings.patch_embeddings.projection.weight"] = p["embedding/kernel"].transpose(3, 2, 0, 1)
    out["vit.embeddings.patch_embeddings.projection.bias"] = p["embedding/bias"]
    i = 0
    while f"Transformer/encoderblock_{i}/LayerNorm_0/scale" in p:
        blk, dst = f"Transformer/encoderblock_{i}/", f"vit.encoder.layer.{i}."
        att = blk + "MultiHeadDotProductAttention_1/"
        for src, name in (("LayerNorm_0", "layernorm_before"), ("LayerNorm_2", "layernorm_after")):
            out[dst + name + ".weight"], out[dst + name + ".bias"] = p[blk + src + "/scale"], p[blk + src + "/bias"]
        for n in ("query", "key", "value"):
            kernel = p[att + n + "/kernel"]
            out[dst + f"attention.attention.{n}.weight"] = kernel.reshape(kernel.shape[0], -1).T
            out[dst + f"attention.attention.{n}.bias"] = p[att + n + "/bias"].reshape(-1)
        kernel = p[att + "out/kernel"]
        out[dst + "attention.output.dense.weight"] = kernel.reshape(-1, kernel.shape[-1]).T
        out[dst + "attention.output.dense.bias"] = p[att + "out/bias"]
        for j, name in ((0, "intermediate.dense"), (1, "output.dense")):
            out[dst + name + ".weight"] = p[blk + f"MlpBlock_3/Dense_{j}/kernel"].T
            out[dst + name + ".bias"] = p[blk + f"MlpBlock_3/Dense_{j}/bias"]
        i += 1
    out["vit.layernorm.weight"], out["vit.layernorm.bias"] = p["Transformer/encoder_norm/scale"], \
        p["Transformer/encoder_norm/bias"]
    out["classifier.weight"], out["classifier.bias"] = p["head/kernel"].T, p["head/bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def mindcv_model(**cfg):
    from mindcv.models.vit import VisionTransformer as MindcvViT
    cfg = dict(SMALL, **cfg)
    return MindcvViT(image_size=cfg["image_size"], patch_size=cfg["patch_size"], embed_dim=cfg["embed_dim"],
                     depth=cfg["depth"], num_heads=cfg["num_heads"], num_classes=cfg["num_classes"])


def set_params(cell, weights):
    params = {p.name: p for p in cell.get_parameters()}
    assert set(params) == set(weights)
    for name, value in weights.items():
        params[name].set_data(ms.Tensor(value))


def write_layout(layout, params, tmp_path):
    """Write Google-layout ``params`` as the file ``layout`` ships in."""
    vit = to_vit_ms(params)
    if layout == "google":
        path = tmp_path / "ViT.npz"
        np.savez(path, **params)
    elif layout == "tutorial":
        # the tutorial trains with nn.Adam: its checkpoints also hold moment1/moment2 and run state
        weights = rename(vit, TUTORIAL_NAMES)
        weights.update({f"moment1.{n}": np.zeros_like(a) for n, a in weights.items()})
        weights.update(global_step=np.array([7], np.int32), learning_rate=np.array(1e-3, np.float32))
        path = save_ckpt(tmp_path / "vit_b_16_224.ckpt", weights)
    elif layout == "mindcv":
        source = mindcv_model()
        set_params(source, vit)
        path = tmp_path / "mindcv_vit.ckpt"
        ms.save_checkpoint(source, str(path))
    elif layout == "timm":
        path = tmp_path / "model.safetensors"
        save_file(rename(vit, TIMM_NAMES), str(path), metadata={"format": "pt"})
    elif layout == "huggingface":
        path = tmp_path / "hf.safetensors"
        save_file(hf_weights(params), str(path))
    else:
        raise AssertionError(layout)
    return path


@pytest.mark.parametrize("layout", ["tutorial", "mindcv", "timm", "huggingface", "google"])
def test_each_layout_gives_the_reference_logits_with_the_source_numerics(layout, tmp_path):
    params = small_params()
    path = write_layout(layout, params, tmp_path)
    model = VisionTransformer(**SMALL)  # built with the defaults (1e-6, exact GELU, ImageNet mean/std)
    report = load_pretrained(model, path)
    eps, tanh, (mean, std) = SOURCE[layout]
    assert report["layout"] == layout
    assert (model.norm_eps, model.gelu_approximate, model.mean, model.std) == (eps, tanh, mean, std)
    x = images()
    assert_matches(logits(model, x), forward(params, x, norm_eps=eps, gelu_approximate=tanh))


def test_mindcv_weights_give_mindcvs_own_logits(tmp_path):
    params = small_params(seed=3)
    source = mindcv_model()
    set_params(source, to_vit_ms(params))
    ms.save_checkpoint(source, str(tmp_path / "m.ckpt"))
    model = VisionTransformer(**SMALL)
    load_pretrained(model, tmp_path / "m.ckpt")
    x = images()
    source.set_train(False)
    assert_matches(logits(model, x), source(ms.Tensor(x)).asnumpy())


def test_the_reference_tells_the_gelu_forms_apart():
    # the numerics checks above can fail: tanh vs exact GELU moves these logits far beyond the 1e-5 tolerance
    params, x = small_params(), images()
    exact, tanh = forward(params, x, gelu_approximate=False), forward(params, x, gelu_approximate=True)
    assert np.abs(exact - tanh).max() / np.abs(exact).max() > 1e-4


def test_numerics_model_keeps_the_models_numerics(tmp_path):
    params = small_params()
    path = write_layout("tutorial", params, tmp_path)
    model = VisionTransformer(**SMALL, norm_eps=1e-6, gelu_approximate=False)
    report = load_pretrained(model, path, numerics="model")
    assert report["numerics"] is None
    assert (model.norm_eps, model.gelu_approximate, (model.mean, model.std)) == (1e-6, False, IMAGENET)
    x = images()
    assert_matches(logits(model, x), forward(params, x, norm_eps=1e-6, gelu_approximate=False))


def test_set_numerics_changes_the_layer_norm_epsilon_actually_used():
    model = VisionTransformer(**SMALL)
    norm = model.blocks[0].norm1
    tiny = ms.Tensor(np.tile(np.array([1e-3, -1e-3], np.float32), 32)[None])  # variance 1e-6, comparable to eps
    before = norm(tiny).asnumpy()
    set_numerics(model, norm_eps=1e-12)
    after = norm(tiny).asnumpy()
    np.testing.assert_allclose(np.abs(before), 1 / np.sqrt(2), rtol=1e-3)   # 1e-3 / sqrt(1e-6 + 1e-6)
    np.testing.assert_allclose(np.abs(after), 1.0, rtol=1e-3)              # 1e-3 / sqrt(1e-6 + 1e-12)
    assert model.norm_eps == 1e-12 and model.config["norm_eps"] == 1e-12
    with pytest.raises(ValueError, match="norm_eps must be a positive number"):
        set_numerics(model, norm_eps=0)
    with pytest.raises(ValueError, match="mean must be 3 numbers"):
        set_numerics(model, mean=(0.5, 0.5))


def test_vit_ms_checkpoints_follow_their_recorded_numerics_and_skip_optimizer_state(tmp_path):
    params = small_params(seed=5)
    trained = VisionTransformer(**SMALL, norm_eps=1e-5, gelu_approximate=True, mean=HALF[0], std=HALF[1])
    set_params(trained, to_vit_ms(params))
    save_model(trained, tmp_path / "model.ckpt", classes=[f"c{i}" for i in range(10)])
    # last.ckpt: the training network with AdamWeightDecay state (adam_m.*, adam_v.*, global_step, ...) + epoch
    opt = nn.AdamWeightDecay(trained.trainable_params(), learning_rate=1e-3)
    train_net = nn.TrainOneStepCell(nn.WithLossCell(trained, nn.CrossEntropyLoss()), opt)
    ms.save_checkpoint(train_net, str(tmp_path / "last.ckpt"),
                       append_dict={"epoch": 3, "vit_ms_config": json.dumps(trained.config)})
    x = images()
    expected = forward(params, x, norm_eps=1e-5, gelu_approximate=True)
    for name in ("model.ckpt", "last.ckpt"):
        model = VisionTransformer(**SMALL)
        report = load_pretrained(model, tmp_path / name)
        assert report["layout"] == "vit_ms"
        assert (model.norm_eps, model.gelu_approximate, model.mean, model.std) == (1e-5, True, *HALF)
        assert_matches(logits(model, x), expected)
    assert {"adam_m.cls_token", "adam_v.head.weight", "global_step", "epoch"} <= set(report["skipped_training_state"])


def test_real_junk_is_not_taken_for_optimizer_state(tmp_path):
    weights = to_vit_ms(small_params())
    weights["adam_m.blocks.7.attn.qkv.weight"] = np.zeros((3, 3), np.float32)  # no such parameter in the file
    weights["junk.weight"] = np.zeros((4, 4), np.float32)
    path = save_ckpt(tmp_path / "junk.ckpt", weights)
    with pytest.raises(ValueError, match=r"unexpected in the checkpoint \(2\): adam_m\.blocks\.7\.attn\.qkv\.weight, "
                                         r"junk\.weight"):
        load_pretrained(VisionTransformer(**SMALL), path, layout="mindcv")


def test_fine_tuning_load_keeps_the_backbone_and_starts_a_new_head(tmp_path, caplog):
    params = small_params(num_classes=1000)
    path = write_layout("tutorial", params, tmp_path)
    model = VisionTransformer(**dict(SMALL, num_classes=5))
    head_before = model.head.weight.asnumpy().copy()
    with caplog.at_level(logging.INFO, logger="vit_ms.weights"):
        load_pretrained(model, path)
    expected = to_vit_ms(params)
    loaded = params_of(model)
    for name, value in loaded.items():
        if name.startswith("head."):
            continue
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    np.testing.assert_array_equal(loaded["head.weight"], head_before)
    assert loaded["head.weight"].shape == (5, 64)
    assert re.search(r"classifies 1000 classes, the model 5: the model's head is freshly initialised", caplog.text)


def test_fine_tuning_from_google_in21k_drops_the_pre_logits(tmp_path, caplog):
    params = small_params(num_classes=21, representation_size=64)
    np.savez(tmp_path / "in21k.npz", **params)
    model = VisionTransformer(**dict(SMALL, num_classes=5))
    with caplog.at_level(logging.WARNING, logger="vit_ms.weights"):
        load_pretrained(model, tmp_path / "in21k.npz")
    assert "pre-logits layer (size 64) is dropped" in caplog.text
    # same classes: the pre-logits layer is part of the model that must be built
    with pytest.raises(ValueError, match="representation_size=64"):
        load_pretrained(VisionTransformer(**dict(SMALL, num_classes=21)), tmp_path / "in21k.npz")
    model = VisionTransformer(**dict(SMALL, num_classes=21, representation_size=64))
    load_pretrained(model, tmp_path / "in21k.npz")
    x = images()
    assert_matches(logits(model, x), forward(params, x))


def test_hugging_face_backbone_without_classifier(tmp_path, caplog):
    # ViTModel names: no "vit." prefix, a pooler (Dense + tanh on the class token), no classifier
    weights = {k[len("vit."):]: v for k, v in hf_weights(small_params()).items() if k.startswith("vit.")}
    weights["pooler.dense.weight"] = np.eye(64, dtype=np.float32)
    weights["pooler.dense.bias"] = np.zeros(64, np.float32)
    save_file(weights, str(tmp_path / "backbone.safetensors"))
    model = VisionTransformer(**dict(SMALL, num_classes=5))
    with caplog.at_level(logging.WARNING, logger="vit_ms.weights"):
        assert load_pretrained(model, tmp_path / "backbone.safetensors")["layout"] == "huggingface"
    assert "has no classifier, the model 5: the model's head is freshly initialised" in caplog.text
    assert "pre-logits layer (size 64) is dropped" in caplog.text
    np.testing.assert_array_equal(model.cls_token.asnumpy(), weights["embeddings.cls_token"])


def test_create_model_loads_pretrained_weights(tmp_path):
    params = small_params()
    path = write_layout("tutorial", params, tmp_path)
    model = vit_ms.create_model("vit_ti_16", pretrained=path, **SMALL)
    assert (model.norm_eps, model.gelu_approximate) == (1e-7, True)
    x = images()
    assert_matches(logits(model, x), forward(params, x, norm_eps=1e-7, gelu_approximate=True))


def test_a_224_checkpoint_loads_at_384_with_resampled_position_embeddings(tmp_path, caplog):
    cfg = dict(image_size=224, patch_size=16, dim=32, depth=1, num_heads=2, num_classes=10)
    params = random_params(np.random.default_rng(0), **cfg)
    np.savez(tmp_path / "p224.npz", **params)
    model = VisionTransformer(image_size=384, patch_size=16, embed_dim=32, depth=1, num_heads=2, num_classes=10)
    with caplog.at_level(logging.WARNING, logger="vit_ms.weights"):
        load_pretrained(model, tmp_path / "p224.npz")
    assert "resampled from a 14x14 to a 24x24 patch grid" in caplog.text
    pos = model.pos_embed.asnumpy()
    source_pos = params["Transformer/posembed_input/pos_embedding"]
    assert pos.shape == (1, 1 + 24 * 24, 32)
    np.testing.assert_array_equal(pos[:, 0], source_pos[:, 0])  # the class token's embedding is kept
    np.testing.assert_array_equal(pos, resample_pos_embed(source_pos, (24, 24)))
    x = images(size=384, batch=1)
    reference = dict(params, **{"Transformer/posembed_input/pos_embedding": pos})
    assert_matches(logits(model, x), forward(reference, x))


def test_vit_b_16_shaped_course_checkpoint(tmp_path):
    # the tutorial's vit_b_16_224.ckpt shapes (768 wide, 12 heads, 16x16 patches, 1000 classes), two blocks deep
    cfg = dict(image_size=224, patch_size=16, dim=768, depth=2, num_heads=12, num_classes=1000)
    params = random_params(np.random.default_rng(0), scale=0.05, **cfg)
    path = save_ckpt(tmp_path / "vit_b_16_224.ckpt", rename(to_vit_ms(params), TUTORIAL_NAMES))
    model = VisionTransformer(image_size=224, patch_size=16, embed_dim=768, depth=2, num_heads=12, num_classes=1000)
    load_pretrained(model, path)
    x = images(size=224, batch=1)
    assert_matches(logits(model, x), forward(params, x, norm_eps=1e-7, gelu_approximate=True))


def test_patch_size_mismatch_b32_into_b16(tmp_path):
    params = small_params(image_size=64, patch_size=16)  # "B/32"-like: bigger patches
    np.savez(tmp_path / "b32.npz", **params)
    model = VisionTransformer(**dict(SMALL, image_size=64))
    with pytest.raises(ValueError, match=r"b32\.npz.*\n.*patch size: the checkpoint cuts 16x16 patches, the model 8x8; "
                                         r"build the model with patch_size=16"):
        load_pretrained(model, tmp_path / "b32.npz")


def test_a_missing_block_is_an_error_and_nothing_is_loaded(tmp_path):
    np.savez(tmp_path / "two.npz", **small_params())
    model = VisionTransformer(**dict(SMALL, depth=3))
    before = params_of(model)
    with pytest.raises(ValueError) as info:
        load_pretrained(model, tmp_path / "two.npz")
    message = str(info.value)
    assert "depth: the checkpoint has 2 blocks, the model 3" in message
    assert "missing from the checkpoint (12): blocks.2.* (whole block)" in message
    assert "nothing was loaded" in message
    after = params_of(model)
    assert all(np.array_equal(before[n], after[n]) for n in before)
    assert (model.norm_eps, model.mean) == (1e-6, IMAGENET[0])  # numerics untouched too


def test_all_problems_are_listed_together(tmp_path):
    weights = to_vit_ms(small_params())
    weights["blocks.0.mlp.fc1.weight"] = np.zeros((128, 64), np.float32)  # mlp_ratio 2 instead of 4
    del weights["blocks.1.mlp.fc2.bias"]
    weights["stray.weight"] = np.zeros(3, np.float32)
    path = save_ckpt(tmp_path / "bad.ckpt", weights)
    with pytest.raises(ValueError) as info:
        load_pretrained(VisionTransformer(**SMALL), path, layout="mindcv")
    message = str(info.value)
    assert "missing from the checkpoint (1): blocks.1.mlp.fc2.bias" in message
    assert "unexpected in the checkpoint (1): stray.weight" in message
    assert "shape mismatch (1): blocks.0.mlp.fc1.weight: checkpoint (128, 64), model (256, 64)" in message


def test_head_count_mismatch_from_google_kernels(tmp_path):
    np.savez(tmp_path / "h4.npz", **small_params())
    with pytest.raises(ValueError, match="attention heads: the checkpoint has 4, the model 2"):
        load_pretrained(VisionTransformer(**dict(SMALL, num_heads=2)), tmp_path / "h4.npz")


@pytest.mark.parametrize("layout", ["tutorial", "timm", "google"])
def test_a_truncated_file_names_the_file(layout, tmp_path):
    path = write_layout(layout, small_params(), tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_pretrained(VisionTransformer(**SMALL), path)


def test_a_missing_file_names_it_and_the_download_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"vit_b_16_224\.ckpt.*python -m vit_ms download checkpoint"):
        load_pretrained(VisionTransformer(**SMALL), tmp_path / "vit_b_16_224.ckpt")


def test_bad_arguments(tmp_path):
    path = write_layout("timm", small_params(), tmp_path)
    model = VisionTransformer(**SMALL)
    with pytest.raises(ValueError, match="layout must be one of .*'google', got 'keras'"):
        load_pretrained(model, path, layout="keras")
    with pytest.raises(ValueError, match="numerics must be one of 'source', 'model', got 'auto'"):
        load_pretrained(model, path, numerics="auto")
    with pytest.raises(TypeError, match="expects a vit_ms VisionTransformer, got Dense"):
        load_pretrained(nn.Dense(2, 2), path)
    with pytest.raises(ValueError, match="cannot tell which ViT weights layout.*first names: a, b"):
        detect_layout(["a", "b"])


def test_bfloat16_safetensors_are_read(tmp_path):
    import struct
    values = np.array([1.0, -2.5, 0.15625], np.float32)
    header = json.dumps({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    raw = (values.view(np.uint32) >> 16).astype(np.uint16).tobytes()  # these values are exact in bfloat16
    (tmp_path / "bf16.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + raw)
    arrays, _ = read_weights(tmp_path / "bf16.safetensors")
    np.testing.assert_array_equal(arrays["w"], values)


@pytest.mark.parametrize("source_layout, suffix", [("google", ".ckpt"), ("tutorial", ".safetensors")])
def test_convert_round_trip(source_layout, suffix, tmp_path, capsys):
    params = small_params(seed=7)
    src = write_layout(source_layout, params, tmp_path)
    dst = tmp_path / f"converted{suffix}"
    assert main(["convert", str(src), str(dst)]) == 0
    assert f"wrote {dst}" in capsys.readouterr().out
    arrays, metadata = read_weights(dst)
    model = VisionTransformer(**SMALL)
    assert set(arrays) == {p.name for p in model.get_parameters()}  # plain vit_ms names, optimizer state dropped
    assert json.loads(metadata["vit_ms_source"])["layout"] == source_layout
    assert load_pretrained(model, dst)["layout"] == "vit_ms"
    direct = VisionTransformer(**SMALL)
    load_pretrained(direct, src)
    assert (model.norm_eps, model.gelu_approximate, model.mean) == (direct.norm_eps, direct.gelu_approximate,
                                                                   direct.mean)
    x = images()
    np.testing.assert_array_equal(logits(model, x), logits(direct, x))
    eps, tanh, _ = SOURCE[source_layout]
    assert_matches(logits(model, x), forward(params, x, norm_eps=eps, gelu_approximate=tanh))


def test_convert_errors_are_reported(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope.npz"), str(tmp_path / "out.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    np.savez(tmp_path / "p.npz", **small_params())
    assert main(["convert", str(tmp_path / "p.npz"), str(tmp_path / "out.pth")]) == 2
    assert "must be a .ckpt or .safetensors path" in capsys.readouterr().err


def test_numpy_reference_round_trips_vit_ms_names():
    params = small_params(representation_size=16)
    back = from_vit_ms(to_vit_ms(params), num_heads=4)
    assert set(back) == set(params)
    assert all(np.array_equal(back[k], params[k]) for k in params)


def _course_like_checkpoint(tmp_path):
    """A tutorial-layout ViT-B/16 checkpoint with one block: the course file's layout, scaled down by depth."""
    params = random_params(np.random.default_rng(5), image_size=224, patch_size=16, dim=768, depth=1, num_heads=12,
                           num_classes=1000)
    return params, write_layout("tutorial", params, tmp_path).read_bytes()


def test_pretrained_true_downloads_the_course_checkpoint_into_the_cache_and_loads_it(tmp_path, monkeypatch):
    from file_server import FileServer

    from vit_ms import factory

    params, data = _course_like_checkpoint(tmp_path)
    monkeypatch.setenv("VIT_MS_CACHE", str(tmp_path / "cache"))
    with FileServer({"/vision/vit_b_16_224.ckpt": data}) as server:
        monkeypatch.setattr(factory, "COURSE_CHECKPOINT_URL", server.url("/vision/vit_b_16_224.ckpt"))
        model = vit_ms.create_model("vit_b_16", pretrained=True, depth=1)
        again = vit_ms.create_model("vit_base_patch16_224", pretrained=True, depth=1)   # timm's name, same file
    cached = tmp_path / "cache" / "checkpoints" / "vit_b_16_224.ckpt"
    assert cached.read_bytes() == data and len(server.requests) == 1    # downloaded once, then from the cache
    assert (model.norm_eps, model.gelu_approximate) == (1e-7, True)      # the tutorial's numerics
    x = images(224, batch=1)
    expected = forward(params, x, norm_eps=1e-7, gelu_approximate=True)
    assert_matches(logits(model, x), expected)
    assert_matches(logits(again, x), expected)


def test_pretrained_true_offline_fails_at_once_naming_the_url_and_the_path(tmp_path, monkeypatch):
    import socket
    import time

    from vit_ms import factory

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]                        # nothing listens there once the socket is closed
    url = f"http://127.0.0.1:{port}/vision/vit_b_16_224.ckpt"
    monkeypatch.setenv("VIT_MS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(factory, "COURSE_CHECKPOINT_URL", url)
    start = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        vit_ms.create_model("vit_b_16", pretrained=True, depth=1)
    assert time.monotonic() - start < 10
    assert url in str(info.value)
    assert str((tmp_path / "cache" / "checkpoints" / "vit_b_16_224.ckpt").resolve()) in str(info.value)
