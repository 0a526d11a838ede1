"""A hand-written JAX + optax training loop: the reference for the suite's JAX timing.

A jitted step (value_and_grad, optax SGD, the old parameters and state donated), the data
on the device before the clock, each step timed until its loss is ready (block_until_ready:
the step's outputs come from one executable, ready together). Prints one JSON line.
Standard library, NumPy, jax and optax only.
"""

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="784,512,512,10")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--activation", default="relu", choices=["relu", "sigmoid", "tanh"])
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    os.environ["NPROC"] = str(args.threads)  # XLA's CPU pool size, read when jax starts
    import jax
    import jaxlib
    import optax

    jax.config.update("jax_default_matmul_precision", "highest")  # no TF32 on a GPU
    device = jax.devices("gpu" if args.device == "cuda" else "cpu")[0]

    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((args.batch_size, sizes[0])).astype(np.float32),
                rng.integers(0, sizes[-1], args.batch_size)) for _ in range(8)]
    init = np.random.default_rng(1)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        limit = np.sqrt(6.0 / (fan_in + fan_out))  # glorot uniform
        params.append((init.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32),
                       np.zeros(fan_out, np.float32)))

    act = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jax.nn.tanh}[args.activation]

    def loss_fn(params, x, y):
        h = x
        for w, b in params[:-1]:
            h = act(h @ w + b)
        w, b = params[-1]
        return optax.softmax_cross_entropy_with_integer_labels(h @ w + b, y).mean()

    optimizer = optax.sgd(args.learning_rate)

    def train_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step = jax.jit(train_step, donate_argnums=(0, 1))
    params = jax.device_put(params, device)
    opt_state = optimizer.init(params)
    data = jax.block_until_ready(jax.device_put(batches, device))

    times = []
    for i in range(args.warmup + args.steps):
        x, y = data[i % len(data)]
        start = time.perf_counter()
        params, opt_state, loss = step(params, opt_state, x, y)
        loss.block_until_ready()  # one executable's outputs are ready together
        times.append(time.perf_counter() - start)

    timed = [t * 1e3 for t in times[args.warmup:]]
    print(json.dumps({
        "backend": "jax", "step_ms_median": float(np.median(timed)), "step_ms": timed,
        "first_step_s": times[0],
        "versions": {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
                     "optax": optax.__version__, "numpy": np.__version__},
    }))


if __name__ == "__main__":
    main()
