"""AdamW, the optimizer vit_ms trains with, and gradient clipping by the global norm.

Each parameter is updated by one kernel: on the CPU vit_ms's C++ kernel (kernels/csrc/adamw.cc), which also applies
the clipping factor and the decoupled weight decay in the same pass; elsewhere MindSpore's fused Adam kernel.
mindcv's AdamW computes the same update from about 15 element-wise ops per parameter, each writing a full-size
tensor: slower and more memory-hungry on CPU (figures: docs/performance.md).
"""
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

from .kernels import native, use_cpu_kernels

_update = ops.MultitypeFuncGraph("adamw_update")
_one_pass_update = ops.MultitypeFuncGraph("adamw_one_pass_update")


@_one_pass_update.register("Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _one_pass_update_one(kernel, step, param, m, v, grad, own):
    return kernel(param, m, v, grad, step, own)


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

    MindSpore's Adam kernel (the path off the CPU) adds eps to sqrt(v) and scales the step by
    sqrt(1 - beta2^t) / (1 - beta1^t); giving it eps * sqrt(1 - beta2^t) makes that exactly
    lr * m_hat / (sqrt(v_hat) + eps). The state is named as in mindcv's AdamW (adam_m.*, adam_v.*, beta1_power,
    beta2_power).

    ``lr_scales``: {parameter name: multiplier of the learning rate} for the parameters that learn faster or slower.
    ``cpu_kernels``: update with vit_ms's one-pass C++ kernel (True) or MindSpore's Adam kernel (False); None: the
    C++ kernel where ``vit_ms.kernels.use_cpu_kernels`` says so and it can be built. It needs float32 parameters and a
    constant weight decay; the results agree within float32 rounding.

    ``optimizer(grads)``, or ``optimizer(grads, grad_scale)`` to update with the gradients multiplied by
    ``grad_scale`` (the factor of ``GlobalNormClip``).
    """

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, lr_scales=None,
                 cpu_kernels=None):
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
        self.one_pass = self._one_pass_kernel(cpu_kernels)
        if self.one_pass is not None:   # each parameter's (lr multiplier, weight decay)
            decays = self.weight_decay if self.is_group else (self.weight_decay,) * len(self._parameters)
            self.own = tuple(Tensor([lr_scales.get(p.name, 1.0), float(decay) if flag else 0.0], ms.float32)
                             for p, decay, flag in zip(self._parameters, decays, self.decay_flags))
            self.no_scale = Tensor(1.0, ms.float32)

    def _one_pass_kernel(self, cpu_kernels):
        if not use_cpu_kernels(cpu_kernels):
            return None
        if self.dynamic_weight_decay or any(p.dtype != ms.float32 for p in self._parameters):
            if cpu_kernels:
                raise ValueError("AdamW(cpu_kernels=True) needs float32 parameters and a constant weight decay")
            return None
        kernels = native.adamw()
        return None if kernels is None else kernels[0]

    def construct(self, gradients, grad_scale=None):
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        beta1_power = self.beta1_power * self.beta1
        ops.assign(self.beta1_power, beta1_power)
        beta2_power = self.beta2_power * self.beta2
        ops.assign(self.beta2_power, beta2_power)
        if self.one_pass is not None:
            scale = self.no_scale if grad_scale is None else grad_scale.reshape(())
            step = ops.stack((lr.reshape(()), self.beta1, self.beta2, self.eps, 1.0 - beta1_power, 1.0 - beta2_power,
                              scale))
            return self.hyper_map(ops.partial(_one_pass_update, self.one_pass, step), self._parameters,
                                  self.moments1, self.moments2, gradients, self.own)
        if grad_scale is not None:
            gradients = self.hyper_map(ops.partial(_scale, grad_scale), gradients)
        weight_decay = self.get_weight_decay()
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


_square_sum = ops.MultitypeFuncGraph("square_sum")
_kernel_square_sum = ops.MultitypeFuncGraph("kernel_square_sum")
_scale = ops.MultitypeFuncGraph("scale")


@_square_sum.register("Tensor")
def _square_sum_one(grad):
    squares = ops.square(grad.astype(ms.float32))
    if squares.ndim > 1:  # rows first: MindSpore's CPU sum over all axes of a matrix is slower
        return squares.reshape(squares.shape[0], -1).sum(1).sum().reshape(1)
    return squares.sum().reshape(1)


@_kernel_square_sum.register("Function", "Tensor")
def _kernel_square_sum_one(kernel, grad):
    return kernel(grad) if grad.dtype == ms.float32 else _square_sum_one(grad)


@_scale.register("Tensor", "Tensor")
def _scale_one(factor, grad):
    return grad * factor.astype(grad.dtype)


class GlobalNormClip(nn.Cell):
    """``clip(grads)``: the factor max_norm / max(global L2 norm of grads, max_norm), by which gradients are
    multiplied to have a global norm of at most max_norm (the rule of MindSpore's ops.clip_by_global_norm). AdamW
    takes it as ``grad_scale`` and applies it as it reads each gradient, instead of a pass that writes scaled copies.
    The sums of squares are vit_ms's one-pass C++ kernel where ``cpu_kernels`` (as for AdamW) allows."""

    def __init__(self, max_norm, cpu_kernels=None):
        super().__init__()
        if not max_norm > 0:
            raise ValueError(f"max_norm must be positive, got {max_norm!r}")
        self.max_norm = Tensor(float(max_norm), ms.float32)
        kernels = native.adamw() if use_cpu_kernels(cpu_kernels) else None
        self.sum_of_squares = None if kernels is None else kernels[1]
        self.hyper_map = ops.HyperMap()

    def construct(self, grads):
        if self.sum_of_squares is None:
            squares = self.hyper_map(_square_sum, grads)
        else:
            squares = self.hyper_map(ops.partial(_kernel_square_sum, self.sum_of_squares), grads)
        norm = ops.sqrt(ops.addn(squares))
        return self.max_norm / ops.maximum(norm, self.max_norm)


def make_optimizer(model, lr, weight_decay, pos_embed_lr_scale=1.0, pos_embed_weight_decay=0.0, cpu_kernels=None):
    """AdamW (eps 1e-8); no weight decay on norms, biases, class token and position embedding, as mindcv's
    create_optimizer(..., weight_decay_filter="norm_and_bias") groups them. ``lr``: a number or a per-step list.
    ``pos_embed_lr_scale``: the position embedding learns with this multiple of ``lr``.
    ``pos_embed_weight_decay``: the position embedding's own decoupled weight decay (applied with its scaled rate).
    ``cpu_kernels``: as for AdamW."""
    from mindcv.optim.optim_factory import init_group_params

    pos_embed = model.pos_embed
    groups = init_group_params(model.trainable_params(), weight_decay, "norm_and_bias", model.no_weight_decay())
    if pos_embed_weight_decay:
        no_decay = groups[1]
        no_decay["params"] = [p for p in no_decay["params"] if p is not pos_embed]
        groups.insert(2, {"params": [pos_embed], "weight_decay": pos_embed_weight_decay})
    return AdamW(groups, learning_rate=lr, eps=1e-8, lr_scales={pos_embed.name: pos_embed_lr_scale},
                 cpu_kernels=cpu_kernels)
