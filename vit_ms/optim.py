"""AdamW as one fused MindSpore Adam kernel per parameter, the optimizer vit_ms trains with, and gradient clipping.

mindcv's AdamW computes the same update from about 15 element-wise ops per parameter, each writing a full-size
tensor: slower and more memory-hungry on CPU (figures: docs/performance.md).
"""
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

_update = ops.MultitypeFuncGraph("adamw_update")


@_update.register("Function", "Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                  "Tensor", "Tensor", "Tensor", "Tensor", "Bool")
def _update_one(adam, decay, beta1_power, beta2_power, beta1, beta2, eps, lr, weight_decay, param, m, v, grad,
                decay_flag):
    if decay_flag:  # decoupled weight decay, from the weights before this step: param -= lr * wd * param
        param = ops.depend(param, decay(param, lr * weight_decay, param))
    return ops.depend(True, adam(param, m, v, beta1_power, beta2_power, lr, beta1, beta2, eps, grad))


@_update.register("Function", "Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                  "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Bool")
def _update_one_scaled(adam, decay, beta1_power, beta2_power, beta1, beta2, eps, lr, weight_decay, lr_scale, param, m,
                       v, grad, decay_flag):
    return _update_one(adam, decay, beta1_power, beta2_power, beta1, beta2, eps, lr * lr_scale, weight_decay, param, m,
                       v, grad, decay_flag)


class AdamW(nn.Optimizer):
    """PyTorch's AdamW: bias-corrected moments, eps added to sqrt(v_hat), decoupled weight decay.

    MindSpore's Adam kernel adds eps to sqrt(v) and scales the step by sqrt(1 - beta2^t) / (1 - beta1^t); giving it
    eps * sqrt(1 - beta2^t) makes that exactly lr * m_hat / (sqrt(v_hat) + eps). The state is named as in mindcv's
    AdamW (adam_m.*, adam_v.*, beta1_power, beta2_power).

    ``lr_scales``: {parameter name: multiplier of the learning rate} for the parameters that learn faster or slower.
    """

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, lr_scales=None):
        super().__init__(learning_rate, params, weight_decay)
        if self.is_group_lr:
            raise ValueError("AdamW takes one learning rate (or schedule) for all parameter groups, got one per group")
        lr_scales = {name: float(k) for name, k in (lr_scales or {}).items() if float(k) != 1.0}
        unknown = set(lr_scales) - {p.name for p in self._parameters}
        if unknown:
            raise ValueError(f"lr_scales names parameters the optimizer does not train: {sorted(unknown)}")
        # one more multiplication per parameter only when some rate differs
        self.lr_scales = tuple(Tensor(lr_scales.get(p.name, 1.0), ms.float32) for p in self._parameters) \
            if lr_scales else None
        self.beta1 = Tensor(beta1, ms.float32)
        self.beta2 = Tensor(beta2, ms.float32)
        self.eps = Tensor(eps, ms.float32)
        self.moments1 = self._parameters.clone(prefix="adam_m", init="zeros")
        self.moments2 = self._parameters.clone(prefix="adam_v", init="zeros")
        self.beta1_power = Parameter(Tensor(1.0, ms.float32), name="beta1_power")
        self.beta2_power = Parameter(Tensor(1.0, ms.float32), name="beta2_power")
        self.adam = ops.Adam()
        self.decay = ops.ApplyGradientDescent()
        self.hyper_map = ops.HyperMap()

    def construct(self, gradients):
        lr = self.get_lr()
        weight_decay = self.get_weight_decay()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        beta1_power = self.beta1_power * self.beta1
        ops.assign(self.beta1_power, beta1_power)
        beta2_power = self.beta2_power * self.beta2
        ops.assign(self.beta2_power, beta2_power)
        eps = self.eps * ops.sqrt(1.0 - beta2_power)
        step = ops.partial(_update, self.adam, self.decay, beta1_power, beta2_power, self.beta1, self.beta2, eps, lr)
        if not self.is_group:
            step = ops.partial(step, weight_decay)
            if self.lr_scales is not None:
                return self.hyper_map(step, self.lr_scales, self._parameters, self.moments1, self.moments2, gradients,
                                      self.decay_flags)
            return self.hyper_map(step, self._parameters, self.moments1, self.moments2, gradients, self.decay_flags)
        if self.lr_scales is not None:
            return self.hyper_map(step, weight_decay, self.lr_scales, self._parameters, self.moments1, self.moments2,
                                  gradients, self.decay_flags)
        return self.hyper_map(step, weight_decay, self._parameters, self.moments1, self.moments2, gradients,
                              self.decay_flags)


_hyper_map = ops.HyperMap()
_square_sum = ops.MultitypeFuncGraph("square_sum")
_scale = ops.MultitypeFuncGraph("scale")


@_square_sum.register("Tensor")
def _square_sum_one(grad):
    squares = ops.square(grad.astype(ms.float32))
    if squares.ndim > 1:  # rows first: MindSpore's CPU sum over all axes of a matrix is slower
        return squares.reshape(squares.shape[0], -1).sum(1).sum().reshape(1)
    return squares.sum().reshape(1)


@_scale.register("Tensor", "Tensor")
def _scale_one(factor, grad):
    return grad * factor.astype(grad.dtype)


def clip_by_global_norm(grads, max_norm):
    """Scale the gradients by max_norm / max(global L2 norm, max_norm), so that their global norm is at most max_norm.
    The rule of MindSpore's ops.clip_by_global_norm (deprecated, to be removed after 2.9), with one multiplication by
    a precomputed factor per gradient where that function multiplies and then divides each one (ViT-B/16: two
    passes over 86M gradients); a factor of exactly 1 leaves the gradients unchanged."""
    norm = ops.sqrt(ops.addn(_hyper_map(_square_sum, grads)))
    factor = max_norm / ops.maximum(norm, max_norm)
    return _hyper_map(ops.partial(_scale, factor), grads)


def make_optimizer(model, lr, weight_decay, pos_embed_lr_scale=1.0, pos_embed_weight_decay=0.0):
    """AdamW (eps 1e-8); no weight decay on norms, biases, class token and position embedding, as mindcv's
    create_optimizer(..., weight_decay_filter="norm_and_bias") groups them. ``lr``: a number or a per-step list.
    ``pos_embed_lr_scale``: the position embedding learns with this multiple of ``lr``.
    ``pos_embed_weight_decay``: the position embedding's own decoupled weight decay (applied with its scaled rate)."""
    from mindcv.optim.optim_factory import init_group_params

    pos_embed = model.pos_embed
    groups = init_group_params(model.trainable_params(), weight_decay, "norm_and_bias", model.no_weight_decay())
    if pos_embed_weight_decay:
        no_decay = groups[1]
        no_decay["params"] = [p for p in no_decay["params"] if p is not pos_embed]
        groups.insert(2, {"params": [pos_embed], "weight_decay": pos_embed_weight_decay})
    return AdamW(groups, learning_rate=lr, eps=1e-8, lr_scales={pos_embed.name: pos_embed_lr_scale})
