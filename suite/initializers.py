"""Initial parameters, drawn once by the suite from the seed (Keras definitions).

A registry of small functions ``(rng, shape, fan_in, fan_out) -> float64 array``; the
"normal" variants are Keras's truncated normals (cut at two standard deviations and
rescaled so the variance is the nominal one). Worker side: NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backends.base import Params
from suite.spec import Spec

# NOTE: stddev of a unit normal truncated to [-2, 2]; Keras divides by it so the
# truncated draw keeps the nominal variance.
_TRUNCATION_STD = 0.87962566103423978


def _truncated_normal(rng: np.random.Generator, shape, stddev: float) -> np.ndarray:
    draw = rng.standard_normal(shape)
    bad = np.abs(draw) > 2.0
    while bad.any():
        draw[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(draw) > 2.0
    return draw * (stddev / _TRUNCATION_STD)


def _uniform(limit_of: Callable[[int, int], float]):
    def draw(rng, shape, fan_in, fan_out):
        limit = limit_of(fan_in, fan_out)
        return rng.uniform(-limit, limit, size=shape)

    return draw


def _normal(stddev_of: Callable[[int, int], float]):
    def draw(rng, shape, fan_in, fan_out):
        return _truncated_normal(rng, shape, stddev_of(fan_in, fan_out))

    return draw


INITIALIZERS: dict[str, Callable[..., np.ndarray]] = {
    "glorot_uniform": _uniform(lambda i, o: np.sqrt(6.0 / (i + o))),
    "glorot_normal": _normal(lambda i, o: np.sqrt(2.0 / (i + o))),
    "he_uniform": _uniform(lambda i, o: np.sqrt(6.0 / i)),
    "he_normal": _normal(lambda i, o: np.sqrt(2.0 / i)),
    "lecun_uniform": _uniform(lambda i, o: np.sqrt(3.0 / i)),
    "lecun_normal": _normal(lambda i, o: np.sqrt(1.0 / i)),
    "zeros": lambda rng, shape, i, o: np.zeros(shape),
    "ones": lambda rng, shape, i, o: np.ones(shape),
    # torch.nn.Linear: kaiming_uniform(a=sqrt(5)) on the weight and U(+-1/sqrt(fan_in)) on
    # the bias, both of which come to a bound of 1/sqrt(fan_in) of the layer.
    "torch_default": _uniform(lambda i, o: 1.0 / np.sqrt(i)),
}


def initial_params(spec: Spec) -> Params:
    """Every layer's kernel (fan_in, fan_out) and bias (fan_out,), in float64.

    Each tensor has its own stream seeded by (seed, layer, part), so changing one
    layer's initializer leaves the others' draws unchanged.
    """
    params: Params = {}
    seed = spec.training.seed
    for i, (fan_in, layer) in enumerate(zip(spec.sizes[:-1], spec.layers, strict=True)):
        fan_out = layer.units
        kernel_rng = np.random.default_rng([seed, i, 0])
        bias_rng = np.random.default_rng([seed, i, 1])
        params[f"dense_{i}/kernel"] = INITIALIZERS[layer.kernel_initializer](
            kernel_rng, (fan_in, fan_out), fan_in, fan_out)
        # Keras computes a bias's fans from its own 1-D shape (fan_in = fan_out = units);
        # torch's default uses the layer's fan_in.
        bias_fans = (fan_in, fan_out) if layer.bias_initializer == "torch_default" else (
            fan_out, fan_out)
        params[f"dense_{i}/bias"] = INITIALIZERS[layer.bias_initializer](
            bias_rng, (fan_out,), *bias_fans)
    return params
