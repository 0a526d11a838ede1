"""A hand-written Theano 1.0.5 training loop: the reference for the suite's Theano timing.

Theano's idiom: parameters in shared variables, the SGD rule as symbolic ``updates`` of one
compiled function (C ops run by the C VM). The inputs are arrays of the graph's dtypes
before the clock, so the function trusts them (no per-call input checks). Run it with the
Theano environment's interpreter (NumPy < 1.24). Prints one JSON line. Standard library,
NumPy and theano only.
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
    parser.add_argument("--threads", type=int, default=2)  # BLAS: OPENBLAS_NUM_THREADS
    parser.add_argument("--device", default="cpu", choices=["cpu"])
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    # Theano's BLAS detection fails on NumPy 1.23 (no blas_opt_info), and there is no BLAS
    # library to link: an empty ldflags makes Theano call NumPy's BLAS through its C API.
    os.environ.setdefault("THEANO_FLAGS", "blas.ldflags=")
    import theano
    import theano.tensor as T

    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((args.batch_size, sizes[0])).astype(np.float32),
                rng.integers(0, sizes[-1], args.batch_size)) for _ in range(8)]
    init = np.random.default_rng(1)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        limit = np.sqrt(6.0 / (fan_in + fan_out))  # glorot uniform
        params += [theano.shared(init.uniform(-limit, limit, (fan_in, fan_out))
                                 .astype(np.float32)),
                   theano.shared(np.zeros(fan_out, np.float32))]

    act = {"relu": T.nnet.relu, "sigmoid": T.nnet.sigmoid, "tanh": T.tanh}[args.activation]
    x, y = T.matrix("x", dtype="float32"), T.vector("y", dtype="int64")
    h = x
    for w, b in zip(params[0:-2:2], params[1:-2:2], strict=True):
        h = act(T.dot(h, w) + b)
    logits = T.dot(h, params[-2]) + params[-1]
    # rewritten into one op on the logits (crossentropy_softmax_argmax_1hot_with_bias)
    loss = T.nnet.categorical_crossentropy(T.nnet.softmax(logits), y).mean()
    lr = np.float32(args.learning_rate)
    updates = [(p, p - lr * g) for p, g in zip(params, T.grad(loss, params), strict=True)]
    start = time.perf_counter()
    step = theano.function([x, y], loss, updates=updates)
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
        "backend": "theano", "step_ms_median": float(np.median(timed)), "step_ms": timed,
        "first_step_s": compile_s + times[0],
        "versions": {"theano": theano.__version__, "numpy": np.__version__},
    }))


if __name__ == "__main__":
    main()
