"""A hand-written PyTensor training loop: the reference for the suite's PyTensor timing.

Theano's idiom: parameters in shared variables, the SGD rule as symbolic ``updates`` of one
function, compiled in pytensor's default mode (numba in PyTensor 3). The inputs are arrays
of the graph's dtypes before the clock, so the function trusts them (no per-call input
checks). Prints one JSON line. Standard library, NumPy and pytensor only.
"""

import argparse
import json
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
    parser.add_argument("--threads", type=int, default=2)  # BLAS: OPENBLAS_NUM_THREADS
    parser.add_argument("--device", default="cpu", choices=["cpu"])
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import pytensor
    import pytensor.tensor as pt

    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((args.batch_size, sizes[0])).astype(np.float32),
                rng.integers(0, sizes[-1], args.batch_size)) for _ in range(8)]
    init = np.random.default_rng(1)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        limit = np.sqrt(6.0 / (fan_in + fan_out))  # glorot uniform
        params += [pytensor.shared(init.uniform(-limit, limit, (fan_in, fan_out))
                                   .astype(np.float32)),
                   pytensor.shared(np.zeros(fan_out, np.float32))]

    act = {"relu": lambda z: pt.maximum(z, 0), "sigmoid": pt.sigmoid,
           "tanh": pt.tanh}[args.activation]
    x, y = pt.matrix("x", dtype="float32"), pt.vector("y", dtype="int64")
    h = x
    for w, b in zip(params[0:-2:2], params[1:-2:2], strict=True):
        h = act(pt.dot(h, w) + b)
    logits = pt.dot(h, params[-2]) + params[-1]
    loss = -pt.mean(pt.special.log_softmax(logits, axis=-1)[pt.arange(y.shape[0]), y])
    lr = np.float32(args.learning_rate)
    updates = [(p, p - lr * g) for p, g in zip(params, pytensor.grad(loss, params), strict=True)]
    start = time.perf_counter()
    # pytensor's default mode: the fast_run rewrites, compiled with numba (PyTensor 3)
    step = pytensor.function([x, y], loss, updates=updates)
    step.trust_input = True
    compile_s = time.perf_counter() - start

    times = []
    for i in range(args.warmup + args.steps):
        xb, yb = batches[i % len(batches)]
        start = time.perf_counter()
        step(xb, yb)  # runs on the host: finished when it returns
        times.append(time.perf_counter() - start)

    timed = [t * 1e3 for t in times[args.warmup:]]
    print(json.dumps({
        "backend": "pytensor", "step_ms_median": float(np.median(timed)), "step_ms": timed,
        "first_step_s": compile_s + times[0],
        "versions": {"pytensor": pytensor.__version__, "numpy": np.__version__},
    }))


if __name__ == "__main__":
    main()
