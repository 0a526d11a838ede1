"""Activations: a registry of small pure functions (scikit-learn ``_base.py`` style).

Each entry has ``forward(z, **params) -> out`` and ``backward(z, out, delta, **params)
-> delta * sigma'(z)``, with ``z`` and ``out`` the pre- and post-activation arrays of
shape (batch, units) that the forward pass cached. Hyperparameters are those of
``suite.catalogue.ACTIVATIONS``. Arithmetic stays in the dtype of ``z``: constants are
Python floats, which never upcast a float32 array.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from backends.reference import resolve_conventions


@dataclass(frozen=True)
class Activation:
    """``forward`` and ``backward``: the formulas, pure. ``forward_in_place(z, **params)``
    and ``backward_in_place(out, delta, **params)``, where given, are the same numbers
    written over their last argument (no allocation), for activations whose derivative
    needs only ``out``: the layer takes them when it owns ``z`` and ``delta``.
    """

    forward: Callable[..., np.ndarray]
    backward: Callable[..., np.ndarray]
    forward_in_place: Callable[..., np.ndarray] | None = None
    backward_in_place: Callable[..., np.ndarray] | None = None

    def __post_init__(self):
        if self.forward_in_place is not None and self.backward_in_place is None:
            raise ValueError("an in-place forward overwrites z: it needs a backward_in_place, "
                             "which reads only out")


# ---------------------------------------------------------------------------- erf

# NOTE: NumPy has no erf. These are W. J. Cody's rational approximations (Math. Comp. 23,
# 1969; netlib specfun CALERF), good to a few ulps in float64 (the tests check them
# against math.erf and math.erfc) and vectorized here by masking the three intervals.
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_SQRT_1_PI = 0.56418958354775628695  # 1/sqrt(pi)


def _ratio(num: tuple[float, ...], den: tuple[float, ...], t: np.ndarray) -> np.ndarray:
    """Cody's P(t)/Q(t): ``num`` keeps its leading coefficient last, ``den`` is monic."""
    top, bottom = num[-1] * t, t
    for a, b in zip(num[:len(den) - 1], den[:-1], strict=True):
        top = (top + a) * t
        bottom = (bottom + b) * t
    return (top + num[len(den) - 1]) / (bottom + den[-1])


def _exp_minus_square(y: np.ndarray) -> np.ndarray:
    """exp(-y*y) without the rounding error of y*y (Cody's split of y at 1/16)."""
    y16 = np.trunc(y * 16.0) / 16.0
    return np.exp(-y16 * y16) * np.exp(-(y - y16) * (y + y16))


def _erfc_abs(y: np.ndarray) -> np.ndarray:
    """erfc(y) for y >= 0 (NaN stays NaN)."""
    out = np.empty_like(y)
    small = y <= 0.46875
    middle = ~small & (y <= 4.0)
    large = ~(small | middle)
    ys, ym, yl = y[small], y[middle], y[large]
    out[small] = 1.0 - ys * _ratio(_A, _B, ys * ys)
    out[middle] = _exp_minus_square(ym) * _ratio(_C, _D, ym)
    t = 1.0 / (yl * yl)
    out[large] = _exp_minus_square(yl) * (_SQRT_1_PI - t * _ratio(_P, _Q, t)) / yl
    return out


def erfc(x: np.ndarray) -> np.ndarray:
    """The complementary error function, elementwise, in the dtype of ``x``."""
    # NOTE: erfc(40) underflows in float64; clipping there keeps inf out of y*y.
    value = _erfc_abs(np.minimum(np.abs(x), 40.0))
    return np.where(x < 0, 2.0 - value, value)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, in the dtype of ``x``."""
    y = np.minimum(np.abs(x), 40.0)
    out = np.empty_like(y)
    small = y <= 0.46875
    xs = x[small]
    out[small] = xs * _ratio(_A, _B, xs * xs)
    out[~small] = np.copysign((0.5 - _erfc_abs(y[~small])) + 0.5, x[~small])
    return out


# ---------------------------------------------------------------------------- helpers

_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), stable for large |z| (exp only of -|z|)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, shifted by the row maximum."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """softmax over the last axis, shifted by the row maximum."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """Phi(z) = 0.5 * erfc(-z / sqrt(2)): no cancellation in the left tail."""
    # NOTE: frameworks write 0.5 * (1 + erf(z / sqrt 2)), which is 0 for z < -8.3 in float64
    # where the true value is below 1e-16: a difference in absolute terms of that size only.
    return 0.5 * erfc(z * -_SQRT1_2)


def _no_backward(z, out, delta, **params):
    raise NotImplementedError("softmax has no backward of its own: it is always fused into "
                              "cross-entropy, whose gradient is taken from the logits")


def _gelu_tanh_parts(z: np.ndarray, cubic: float = _GELU_CUBIC
                     ) -> tuple[np.ndarray, np.ndarray]:
    """t = tanh(sqrt(2/pi) * (z + cubic z^3)) and du/dz."""
    z2 = z * z
    t = np.tanh(_SQRT_2_PI * (z + cubic * z2 * z))
    return t, _SQRT_2_PI * (1.0 + (3.0 * cubic) * z2)


def _gelu_tanh_backward(z, out, delta, cubic: float = _GELU_CUBIC):
    t, du = _gelu_tanh_parts(z, cubic)
    return delta * (0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du)


def _gelu_backward(z, out, delta):
    return delta * (normal_cdf(z) + z * np.exp(-0.5 * z * z) * _INV_SQRT_2PI)


def _relu_backward_in_place(out: np.ndarray, delta: np.ndarray) -> np.ndarray:
    # NOTE: out > 0 exactly where z > 0 (NaN: neither). delta * mask equals
    # where(z > 0, delta, 0.0) for every finite delta; a masked-off negative delta gives
    # -0.0, which equals 0.0 and changes no sum or update. np.where is much slower on an
    # unpredictable mask (see docs/performance.md, section "Reference: relu's backward").
    return np.multiply(delta, out > 0, out=delta)


def _tanh_backward_in_place(out: np.ndarray, delta: np.ndarray) -> np.ndarray:
    slope = np.multiply(out, out)
    np.subtract(1.0, slope, out=slope)
    return np.multiply(delta, slope, out=delta)


def _sigmoid_backward_in_place(out: np.ndarray, delta: np.ndarray) -> np.ndarray:
    slope = np.subtract(1.0, out)
    slope *= out  # out * (1 - out): the product commutes exactly
    return np.multiply(delta, slope, out=delta)


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda z: z, lambda z, out, delta: delta,
                         lambda z: z, lambda out, delta: delta),
    # NOTE: relu'(0) = 0 and leaky_relu'(0) = negative_slope, as in torch and TensorFlow.
    "relu": Activation(lambda z: np.maximum(z, 0.0),
                       lambda z, out, delta: np.where(z > 0, delta, 0.0),
                       lambda z: np.maximum(z, 0.0, out=z), _relu_backward_in_place),
    "leaky_relu": Activation(
        lambda z, negative_slope: np.where(z > 0, z, negative_slope * z),
        lambda z, out, delta, negative_slope: np.where(z > 0, delta, negative_slope * delta)),
    # exp of min(z, 0) only, so large positive z never overflows in the unused branch
    "elu": Activation(
        lambda z, alpha: np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0))),
        lambda z, out, delta, alpha: np.where(
            z > 0, delta, delta * (alpha * np.exp(np.minimum(z, 0.0))))),
    "sigmoid": Activation(sigmoid, lambda z, out, delta: delta * (out * (1.0 - out)),
                          None, _sigmoid_backward_in_place),
    "tanh": Activation(np.tanh, lambda z, out, delta: delta * (1.0 - out * out),
                       lambda z: np.tanh(z, out=z), _tanh_backward_in_place),
    "softplus": Activation(_softplus, lambda z, out, delta: delta * sigmoid(z)),
    "gelu": Activation(lambda z: z * normal_cdf(z), _gelu_backward),
    "gelu_tanh": Activation(lambda z: 0.5 * z * (1.0 + _gelu_tanh_parts(z)[0]),
                            _gelu_tanh_backward),
    "softmax": Activation(softmax, _no_backward),
}

# torch.nn.Softplus(beta=1, threshold=20): linear (gradient 1) above the threshold.
_TORCH_SOFTPLUS_THRESHOLD = 20.0
_TORCH_SOFTPLUS = Activation(
    lambda z: np.where(z > _TORCH_SOFTPLUS_THRESHOLD, z, _softplus(z)),
    lambda z, out, delta: np.where(z > _TORCH_SOFTPLUS_THRESHOLD, delta, delta * sigmoid(z)))

def _f32(value: float) -> float:
    """The float32 nearest to ``value``, as a Python float."""
    return float(np.float32(value))


# TensorFlow in float64 (float32_activation_constants="tensorflow"): tf.nn.leaky_relu's alpha is a
# 32-bit op attribute; tf.nn.gelu casts its Python-float constants through float32
# (math_ops.cast(0.7071067811865476, dtype), math_ops.cast(0.044715, dtype)) and writes
# the exact form as 0.5 * x * erfc(-x * c). Its 0.7978845608028654 = sqrt(2/pi) and
# elu's alpha (alpha * res) stay exact.
_TF_SQRT1_2 = _f32(_SQRT1_2)
_TF_GELU_CUBIC = _f32(_GELU_CUBIC)


def _tf_gelu_backward(z, out, delta):
    # d/dz 0.5 z erfc(-c z) = 0.5 erfc(-c z) + z c / sqrt(pi) exp(-(c z)^2)
    u = z * _TF_SQRT1_2
    return delta * (0.5 * erfc(-u) + z * (_TF_SQRT1_2 * _SQRT_1_PI) * np.exp(-u * u))


_TF_FLOAT32_CONSTANTS = {
    "leaky_relu": Activation(
        lambda z, negative_slope: ACTIVATIONS["leaky_relu"].forward(z, _f32(negative_slope)),
        lambda z, out, delta, negative_slope: ACTIVATIONS["leaky_relu"].backward(
            z, out, delta, _f32(negative_slope))),
    "gelu": Activation(lambda z: 0.5 * z * erfc(-z * _TF_SQRT1_2), _tf_gelu_backward),
    "gelu_tanh": Activation(
        lambda z: 0.5 * z * (1.0 + _gelu_tanh_parts(z, _TF_GELU_CUBIC)[0]),
        lambda z, out, delta: _gelu_tanh_backward(z, out, delta, _TF_GELU_CUBIC)),
}

# MXNet in float64 (mxnet_float32_attributes="mxnet"): LeakyReLU's ``slope`` (act_type
# leaky and elu) is a C++ float attribute. GELU is not here: MXNet evaluates all of
# 0.5 x (1 + erf(x / sqrt 2)) in float32 (erff), which no float64 formula reproduces.


def _mxnet_leaky_forward(z, negative_slope):
    # NOTE: measured on MXNet 1.9.1: the negative branch is the float32 product
    # float32(z) * float32(slope), widened (bit for bit); the gradient is float32(slope)
    # times delta in the run's dtype. In a float32 run this is the plain formula.
    low = (z.astype(np.float32) * np.float32(negative_slope)).astype(z.dtype)
    return np.where(z > 0, z, low)


_MXNET_FLOAT32_ATTRIBUTES = {
    "leaky_relu": Activation(
        _mxnet_leaky_forward,
        lambda z, out, delta, negative_slope: ACTIVATIONS["leaky_relu"].backward(
            z, out, delta, _f32(negative_slope))),
    "elu": Activation(
        lambda z, alpha: ACTIVATIONS["elu"].forward(z, _f32(alpha)),
        lambda z, out, delta, alpha: ACTIVATIONS["elu"].backward(z, out, delta, _f32(alpha))),
}

#: (convention, value) -> the activations it replaces
VARIANTS: dict[tuple[str, str], dict[str, Activation]] = {
    ("softplus", "torch_threshold"): {"softplus": _TORCH_SOFTPLUS},
    ("float32_activation_constants", "tensorflow"): _TF_FLOAT32_CONSTANTS,
    ("mxnet_float32_attributes", "mxnet"): _MXNET_FLOAT32_ATTRIBUTES,
}


def get(name: str, conventions: Mapping[str, str] | None = None) -> Activation:
    """The activation ``name`` under the given conventions (defaults: the exact formulas)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of: "
                         f"{', '.join(ACTIVATIONS)}")
    for choice in resolve_conventions(conventions).items():
        replaced = VARIANTS.get(choice, {})
        if name in replaced:
            return replaced[name]
    return ACTIVATIONS[name]
