"""The fused AdamW: PyTorch's update rule (checked against a NumPy float64 AdamW), the same steps as mindcv's AdamW,
weight decay only where the model wants it, mindcv's state names."""
import numpy as np
import pytest

import mindspore as ms
from mindcv.optim import create_optimizer

from vit_ms.model import VisionTransformer
from vit_ms.optim import AdamW, make_optimizer

CONFIG = dict(image_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=3)
LRS = [1e-2, 3e-2, 2e-2, 1e-2, 5e-3, 1e-3]
WEIGHT_DECAY = 0.05


def gradient_sequence(params, seed=0):
    """Per step, one gradient per parameter, of magnitudes from 1e-6 to 1 (so eps and bias correction matter)."""
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal(p.shape) * 10.0 ** rng.uniform(-6, 0)).astype(np.float32) for p in params]
            for _ in LRS]


def run(optimizer, params, grads):
    @ms.jit
    def step(g):
        return optimizer(g)

    for g in grads:
        step(tuple(ms.Tensor(x) for x in g))
    return {p.name: p.asnumpy().copy() for p in params}


def numpy_adamw(weights, grads, decayed, beta1=0.9, beta2=0.999, eps=1e-8, own=None):
    """PyTorch's AdamW in float64; ``own``: {name: (lr multiplier, weight decay)} for parameters with their own."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    for t, (lr, g_step) in enumerate(zip(LRS, grads), start=1):
        for (name, _), g in zip(weights.items(), g_step):
            scale, decay = (own or {}).get(name, (1.0, WEIGHT_DECAY if name in decayed else 0.0))
            lr_step = lr * scale
            w[name] -= lr_step * decay * w[name]
            m[name] = beta1 * m[name] + (1 - beta1) * g
            v[name] = beta2 * v[name] + (1 - beta2) * g.astype(np.float64) ** 2
            m_hat, v_hat = m[name] / (1 - beta1 ** t), v[name] / (1 - beta2 ** t)
            w[name] -= lr_step * m_hat / (np.sqrt(v_hat) + eps)
    return w


def model_and_weights():
    np.random.seed(0)
    model = VisionTransformer(**CONFIG)
    return model, {p.name: p.asnumpy().copy() for p in model.trainable_params()}  # asnumpy() may share memory


def test_adamw_follows_pytorchs_update_rule():
    model, weights = model_and_weights()
    params = model.trainable_params()
    grads = gradient_sequence(params)
    decayed = set(weights) - set(model.no_weight_decay()) - {n for n in weights if n.endswith(".bias")}
    result = run(make_optimizer(model, LRS, WEIGHT_DECAY), params, grads)
    expected = numpy_adamw(weights, grads, decayed)
    for name in weights:
        np.testing.assert_allclose(result[name], expected[name], rtol=0, atol=1e-6, err_msg=name)
    assert max(np.abs(result[n] - weights[n]).max() for n in weights) > 1e-2  # the steps were not negligible


def test_pos_embed_lr_scale_moves_only_the_position_embedding_faster():
    """pos_embed_lr_scale=k: the position embedding follows the NumPy AdamW with k x the learning rates (it has no
    weight decay, so its steps are exactly k times larger); every other parameter is bit-identical to scale 1."""
    base_model, weights = model_and_weights()
    scaled_model, _ = model_and_weights()
    grads = gradient_sequence(base_model.trainable_params())
    base = run(make_optimizer(base_model, LRS, WEIGHT_DECAY), base_model.trainable_params(), grads)
    scaled = run(make_optimizer(scaled_model, LRS, WEIGHT_DECAY, pos_embed_lr_scale=10.0),
                 scaled_model.trainable_params(), grads)
    for name in weights:
        if name != "pos_embed":
            np.testing.assert_array_equal(scaled[name], base[name], err_msg=name)
    np.testing.assert_allclose(scaled["pos_embed"] - weights["pos_embed"],
                               10.0 * (base["pos_embed"] - weights["pos_embed"]), rtol=1e-4, atol=1e-6)
    assert np.abs(base["pos_embed"] - weights["pos_embed"]).max() > 1e-2
    with pytest.raises(ValueError, match="does not train"):
        AdamW(base_model.trainable_params(), lr_scales={"no_such_parameter": 2.0})


def test_pos_embed_weight_decay_decays_only_the_position_embedding_with_its_scaled_rate():
    """pos_embed_weight_decay=d with pos_embed_lr_scale=k: the position embedding follows AdamW with k x the rates and
    weight decay d (decoupled: lr x k x d x weights per step); every other parameter is bit-identical to d = 0."""
    base_model, weights = model_and_weights()
    decayed_model, _ = model_and_weights()
    grads = gradient_sequence(base_model.trainable_params())
    base = run(make_optimizer(base_model, LRS, WEIGHT_DECAY, pos_embed_lr_scale=10.0), base_model.trainable_params(),
               grads)
    decayed = run(make_optimizer(decayed_model, LRS, WEIGHT_DECAY, pos_embed_lr_scale=10.0,
                                 pos_embed_weight_decay=0.5), decayed_model.trainable_params(), grads)
    for name in weights:
        if name != "pos_embed":
            np.testing.assert_array_equal(decayed[name], base[name], err_msg=name)
    expected = numpy_adamw(weights, grads, decayed=set(), own={"pos_embed": (10.0, 0.5)})["pos_embed"]
    np.testing.assert_allclose(decayed["pos_embed"], expected, rtol=0, atol=1e-5)   # float32 steps 10x larger
    assert np.abs(decayed["pos_embed"] - base["pos_embed"]).max() > 1e-3     # the decay made a difference


def test_adamw_equals_mindcv_adamw():
    fused_model, _ = model_and_weights()
    mindcv_model, _ = model_and_weights()
    grads = gradient_sequence(fused_model.trainable_params(), seed=1)
    fused = run(make_optimizer(fused_model, LRS, WEIGHT_DECAY), fused_model.trainable_params(), grads)
    reference = run(create_optimizer(mindcv_model, opt="adamw", lr=LRS, weight_decay=WEIGHT_DECAY,
                                     weight_decay_filter="norm_and_bias", eps=1e-8),
                    mindcv_model.trainable_params(), grads)
    for name, value in fused.items():
        np.testing.assert_allclose(value, reference[name], rtol=0, atol=1e-6, err_msg=name)


def test_weight_decay_only_where_the_model_wants_it():
    model, weights = model_and_weights()
    params = model.trainable_params()
    zero = [[np.zeros(p.shape, np.float32) for p in params]] * len(LRS)  # no gradient: only weight decay acts
    result = run(make_optimizer(model, LRS, WEIGHT_DECAY), params, zero)
    shrink = np.prod([1 - lr * WEIGHT_DECAY for lr in LRS])
    no_decay = set(model.no_weight_decay())
    assert {"cls_token", "pos_embed", "norm.gamma", "head.bias"} <= no_decay
    for name, value in result.items():
        expected = weights[name] if name in no_decay else weights[name] * shrink
        np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-9, err_msg=name)


def test_state_names_and_errors():
    model, _ = model_and_weights()
    optimizer = make_optimizer(model, 1e-3, WEIGHT_DECAY)
    names = {p.name for p in optimizer.get_parameters()}
    assert {"beta1_power", "beta2_power", "global_step", "adam_m.head.weight", "adam_v.pos_embed"} <= names
    params = model.trainable_params()
    with pytest.raises(ValueError, match="one learning rate .* got one per group"):
        AdamW([{"params": params[:2], "lr": 1e-3}, {"params": params[2:], "lr": 1e-2}])


@pytest.mark.parametrize("max_norm", [0.5, 1e3], ids=["clipped", "unchanged"])
def test_clip_by_global_norm_equals_mindspores(max_norm):
    from mindspore import ops

    from vit_ms.optim import clip_by_global_norm

    rng = np.random.default_rng(4)
    grads = tuple(ms.Tensor((rng.standard_normal(shape) * 0.1).astype(np.float32))
                  for shape in [(16, 8), (8,), (3, 4, 5), (1,)])
    ours = ms.jit(clip_by_global_norm)(grads, max_norm)
    expected = ms.jit(ops.clip_by_global_norm)(grads, max_norm)
    norm = np.sqrt(sum(float((g.asnumpy().astype(np.float64) ** 2).sum()) for g in grads))
    clipped_norm = np.sqrt(sum(float((g.asnumpy().astype(np.float64) ** 2).sum()) for g in ours))
    assert clipped_norm == pytest.approx(min(norm, max_norm), rel=1e-6)
    for g, mine, theirs in zip(grads, ours, expected):
        np.testing.assert_allclose(mine.asnumpy(), theirs.asnumpy(), rtol=1e-6, atol=0)
        if max_norm > norm:
            np.testing.assert_array_equal(mine.asnumpy(), g.asnumpy())   # a factor of exactly 1
