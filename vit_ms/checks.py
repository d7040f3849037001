"""Argument checks shared by the package: each raises a ValueError that names the argument and the value given."""
import numbers


def check_int(value, name, minimum=1):
    """``value`` as an int, if it is an integer >= ``minimum`` (bools are not integers here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def check_rate(value, name):
    """A drop rate: a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_numerics(norm_eps, gelu_approximate, mean, std, channels):
    """The arguments of VisionTransformer.set_numerics; None means "leave as it is" and always passes."""
    if norm_eps is not None and (isinstance(norm_eps, bool) or not isinstance(norm_eps, numbers.Real)
                                 or not norm_eps > 0):
        raise ValueError(f"norm_eps must be a positive number, got {norm_eps!r}")
    if gelu_approximate is not None and not isinstance(gelu_approximate, bool):
        raise TypeError(f"gelu_approximate must be True (tanh) or False (exact), got {gelu_approximate!r}")
    for name, value in (("mean", mean), ("std", std)):
        if value is not None and (len(tuple(value)) != channels
                                  or not all(isinstance(v, numbers.Real) for v in value)):
            raise ValueError(f"{name} must be {channels} numbers (one per input channel), got {value!r}")
    if std is not None and not all(v > 0 for v in std):
        raise ValueError(f"std must be positive, got {std!r}")
