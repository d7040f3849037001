"""AdamW, with vit_ms's one-pass C++ kernel and with MindSpore's Adam kernel: PyTorch's update rule (checked against
a NumPy float64 AdamW), the same steps as mindcv's AdamW, weight decay only where the model wants it, mindcv's state
names; gradient clipping by the global norm, alone and inside a training step."""
import numpy as np
import pytest

import mindspore as ms
from mindcv.optim import create_optimizer

from vit_ms.model import VisionTransformer
from vit_ms.optim import AdamW, make_optimizer

CONFIG = dict(image_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=3)
LRS = [1e-2, 3e-2, 2e-2, 1e-2, 5e-3, 1e-3]
WEIGHT_DECAY = 0.05


@pytest.fixture(params=[True, False], ids=["cpp-kernel", "mindspore-kernel"])
def cpu_kernels(request):
    if request.param:
        request.getfixturevalue("needs_cpu_kernels")
    return request.param


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


def test_adamw_follows_pytorchs_update_rule(cpu_kernels):
    model, weights = model_and_weights()
    params = model.trainable_params()
    grads = gradient_sequence(params)
    decayed = set(weights) - set(model.no_weight_decay()) - {n for n in weights if n.endswith(".bias")}
    optimizer = make_optimizer(model, LRS, WEIGHT_DECAY, cpu_kernels=cpu_kernels)
    assert (optimizer.one_pass is not None) == cpu_kernels
    result = run(optimizer, params, grads)
    expected = numpy_adamw(weights, grads, decayed)
    for name in weights:
        np.testing.assert_allclose(result[name], expected[name], rtol=0, atol=1e-6, err_msg=name)
    assert max(np.abs(result[n] - weights[n]).max() for n in weights) > 1e-2  # the steps were not negligible


def test_pos_embed_lr_scale_moves_only_the_position_embedding_faster(cpu_kernels):
    """pos_embed_lr_scale=k: the position embedding follows the NumPy AdamW with k x the learning rates (it has no
    weight decay, so its steps are exactly k times larger); every other parameter is bit-identical to scale 1."""
    base_model, weights = model_and_weights()
    scaled_model, _ = model_and_weights()
    grads = gradient_sequence(base_model.trainable_params())
    base = run(make_optimizer(base_model, LRS, WEIGHT_DECAY, cpu_kernels=cpu_kernels), base_model.trainable_params(),
               grads)
    scaled = run(make_optimizer(scaled_model, LRS, WEIGHT_DECAY, pos_embed_lr_scale=10.0, cpu_kernels=cpu_kernels),
                 scaled_model.trainable_params(), grads)
    for name in weights:
        if name != "pos_embed":
            np.testing.assert_array_equal(scaled[name], base[name], err_msg=name)
    np.testing.assert_allclose(scaled["pos_embed"] - weights["pos_embed"],
                               10.0 * (base["pos_embed"] - weights["pos_embed"]), rtol=1e-4, atol=1e-6)
    assert np.abs(base["pos_embed"] - weights["pos_embed"]).max() > 1e-2
    with pytest.raises(ValueError, match="does not train"):
        AdamW(base_model.trainable_params(), lr_scales={"no_such_parameter": 2.0})


def test_pos_embed_weight_decay_decays_only_the_position_embedding_with_its_scaled_rate(cpu_kernels):
    """pos_embed_weight_decay=d with pos_embed_lr_scale=k: the position embedding follows AdamW with k x the rates and
    weight decay d (decoupled: lr x k x d x weights per step); every other parameter is bit-identical to d = 0."""
    base_model, weights = model_and_weights()
    decayed_model, _ = model_and_weights()
    grads = gradient_sequence(base_model.trainable_params())
    base = run(make_optimizer(base_model, LRS, WEIGHT_DECAY, pos_embed_lr_scale=10.0, cpu_kernels=cpu_kernels),
               base_model.trainable_params(), grads)
    decayed = run(make_optimizer(decayed_model, LRS, WEIGHT_DECAY, pos_embed_lr_scale=10.0,
                                 pos_embed_weight_decay=0.5, cpu_kernels=cpu_kernels),
                  decayed_model.trainable_params(), grads)
    for name in weights:
        if name != "pos_embed":
            np.testing.assert_array_equal(decayed[name], base[name], err_msg=name)
    expected = numpy_adamw(weights, grads, decayed=set(), own={"pos_embed": (10.0, 0.5)})["pos_embed"]
    np.testing.assert_allclose(decayed["pos_embed"], expected, rtol=0, atol=1e-5)   # float32 steps 10x larger
    assert np.abs(decayed["pos_embed"] - base["pos_embed"]).max() > 1e-3     # the decay made a difference


def test_adamw_equals_mindcv_adamw(cpu_kernels):
    fused_model, _ = model_and_weights()
    mindcv_model, _ = model_and_weights()
    grads = gradient_sequence(fused_model.trainable_params(), seed=1)
    fused = run(make_optimizer(fused_model, LRS, WEIGHT_DECAY, cpu_kernels=cpu_kernels),
                fused_model.trainable_params(), grads)
    reference = run(create_optimizer(mindcv_model, opt="adamw", lr=LRS, weight_decay=WEIGHT_DECAY,
                                     weight_decay_filter="norm_and_bias", eps=1e-8),
                    mindcv_model.trainable_params(), grads)
    for name, value in fused.items():
        np.testing.assert_allclose(value, reference[name], rtol=0, atol=1e-6, err_msg=name)


def test_weight_decay_only_where_the_model_wants_it(cpu_kernels):
    model, weights = model_and_weights()
    params = model.trainable_params()
    zero = [[np.zeros(p.shape, np.float32) for p in params]] * len(LRS)  # no gradient: only weight decay acts
    result = run(make_optimizer(model, LRS, WEIGHT_DECAY, cpu_kernels=cpu_kernels), params, zero)
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
def test_global_norm_clip_equals_mindspores_clip_by_global_norm(max_norm, cpu_kernels):
    from mindspore import ops

    from vit_ms.optim import GlobalNormClip

    rng = np.random.default_rng(4)
    grads = tuple(ms.Tensor((rng.standard_normal(shape) * 0.1).astype(np.float32))
                  for shape in [(16, 8), (8,), (3, 4, 5), (1,), (70000,)])   # the last one spans several C++ blocks
    clip = GlobalNormClip(max_norm, cpu_kernels=cpu_kernels)
    assert (clip.sum_of_squares is not None) == cpu_kernels
    factor = float(ms.jit(clip)(grads).asnumpy())
    norm = np.sqrt(sum(float((g.asnumpy().astype(np.float64) ** 2).sum()) for g in grads))
    assert factor == pytest.approx(max_norm / max(norm, max_norm), rel=2e-7)
    if max_norm > norm:
        assert factor == 1.0                               # exactly: the gradients are left unchanged
    expected = ms.jit(ops.clip_by_global_norm)(grads, max_norm)
    for g, theirs in zip(grads, expected):
        np.testing.assert_allclose(g.asnumpy() * np.float32(factor), theirs.asnumpy(), rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="max_norm must be positive, got 0"):
        GlobalNormClip(0)


def test_grad_scale_multiplies_the_gradients(cpu_kernels):
    """optimizer(grads, scale) makes the same steps as optimizer(grads * scale)."""
    scaled_model, _ = model_and_weights()
    reference_model, _ = model_and_weights()
    grads = gradient_sequence(scaled_model.trainable_params(), seed=2)
    scale = np.float32(0.37)
    scaled_optimizer = make_optimizer(scaled_model, LRS, WEIGHT_DECAY, cpu_kernels=cpu_kernels)

    @ms.jit
    def scaled_step(g):
        return scaled_optimizer(g, ms.Tensor([scale]))

    for g in grads:
        scaled_step(tuple(ms.Tensor(x) for x in g))
    reference = run(make_optimizer(reference_model, LRS, WEIGHT_DECAY, cpu_kernels=cpu_kernels),
                    reference_model.trainable_params(), [[x * scale for x in g] for g in grads])
    for p in scaled_model.trainable_params():
        np.testing.assert_allclose(p.asnumpy(), reference[p.name], rtol=0, atol=2e-7, err_msg=p.name)


def test_cpp_kernel_needs_float32_parameters():
    half = [ms.Parameter(ms.Tensor(np.zeros(3, np.float16)), name="half")]
    with pytest.raises(ValueError, match=r"cpu_kernels=True\) needs float32 parameters"):
        AdamW(half, cpu_kernels=True)
    assert AdamW(half).one_pass is None                    # the default takes MindSpore's kernel instead


def test_training_steps_equal_with_either_kernel(monkeypatch, needs_cpu_kernels):
    """Compiled training steps (loss, gradients, clipping, AdamW) change the weights alike with the C++ kernels, which
    write the weights in place, and with MindSpore's: the update runs after every read of the old weights (an update
    before the backward pass read them would change the first step's weights by about the learning rate)."""
    from mindcv.loss import create_loss

    from vit_ms.train import make_train_step

    rng = np.random.default_rng(5)
    images = ms.Tensor(rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
    labels = ms.Tensor(np.array([0, 1, 2, 1], np.int32))
    results = {}
    for native in ("1", "0"):
        monkeypatch.setenv("VIT_MS_NATIVE", native)
        np.random.seed(0)
        model = VisionTransformer(**CONFIG, cpu_kernels=False)
        optimizer = make_optimizer(model, 1e-2, WEIGHT_DECAY)
        assert (optimizer.one_pass is not None) == (native == "1")
        step = make_train_step(model, create_loss(name="CE"), optimizer, 0.05, 1)   # clipped: the norm is larger
        weights, losses = [], []
        for _ in range(3):
            losses.append(float(step(images, labels).asnumpy()))
            weights.append({p.name: p.asnumpy().copy() for p in model.trainable_params()})
        results[native] = losses, weights
    (fast_losses, fast), (losses, reference) = results["1"], results["0"]
    np.testing.assert_allclose(fast_losses, losses, rtol=1e-6)
    assert losses[2] < losses[0]
    # float32 rounding differences; Adam's first steps (m / sqrt(v) near cancellation) magnify those of later steps
    for (after, atol) in ((0, 3e-7), (2, 1e-5)):
        for name, value in reference[after].items():
            np.testing.assert_allclose(fast[after][name], value, rtol=0, atol=atol, err_msg=name)
