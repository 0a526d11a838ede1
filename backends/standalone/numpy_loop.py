"""A NumPy training loop written by hand, the reference for the suite's numpy timing.

Dense layers, softmax cross-entropy on integer labels, plain SGD, float32; one JSON line
on stdout. The same command-line interface as every script in backends/standalone/.
The layers' outputs and deltas, the gradients and SGD's scratch are allocated once,
before the clock (``out=``); the activation's derivative and a few row-sized arrays
(the softmax's maxima and sums, the loss's picked entries) are still allocated each step.
The parameters and their gradients are views into two flat arrays, so that SGD is one
pass over cache-sized blocks.
"""

import argparse
import json
import os
import time

BLOCK = 1 << 16  # elements per SGD block: a block of p, g and lr * g stays in L2 cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="784,512,512,10")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--activation", default="relu", choices=("relu", "sigmoid", "tanh"))
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu",))
    args = parser.parse_args()
    sizes, n, lr = [int(s) for s in args.sizes.split(",")], args.batch_size, args.learning_rate
    # NumPy's BLAS reads its thread count once, when it loads: set it before the import
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    import numpy as np

    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((n, sizes[0])).astype(np.float32),
                rng.integers(0, sizes[-1], n)) for _ in range(8)]

    layers = len(sizes) - 1
    shapes = [(fan_in, fan_out) for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True)]
    total = sum(fan_in * fan_out + fan_out for fan_in, fan_out in shapes)
    flat, flat_grad = np.empty(total, np.float32), np.empty(total, np.float32)
    kernels, biases, kernel_grads, bias_grads, start = [], [], [], [], 0
    for fan_in, fan_out in shapes:  # kernel then bias, layer after layer
        end = start + fan_in * fan_out
        kernels.append(flat[start:end].reshape(fan_in, fan_out))
        kernel_grads.append(flat_grad[start:end].reshape(fan_in, fan_out))
        biases.append(flat[end:end + fan_out])
        bias_grads.append(flat_grad[end:end + fan_out])
        start = end + fan_out
    init = np.random.default_rng(1)
    for kernel, bias in zip(kernels, biases, strict=True):
        limit = np.sqrt(6.0 / sum(kernel.shape))  # glorot uniform
        kernel[...] = init.uniform(-limit, limit, kernel.shape)
        bias[...] = 0.0
    # Batches of up to 128 rows: a wide hidden layer's output (and its delta) in Fortran
    # order, the batch as BLAS's rows, which OpenBLAS splits better between its threads.
    orders = ["F" if n <= 128 and fan_out >= 256 and (fan_in >= 256 or i < layers - 2)
              else "C" for i, (fan_in, fan_out) in enumerate(shapes[:-1])] + ["C"]
    outs = [np.empty((n, units), np.float32, order)  # z, then sigma(z)
            for units, order in zip(sizes[1:], orders, strict=True)]
    deltas = [np.empty((n, units), np.float32, order)
              for units, order in zip(sizes[1:-1], orders, strict=False)]
    scaled = np.empty(BLOCK, np.float32)
    rows = np.arange(n)

    def activate(z):  # in place: the backward pass needs only the output
        if args.activation == "relu":
            np.maximum(z, 0.0, out=z)
        elif args.activation == "tanh":
            np.tanh(z, out=z)
        else:
            np.exp(np.negative(z, out=z), out=z)
            np.reciprocal(np.add(z, 1.0, out=z), out=z)

    def derivative(out):  # sigma'(z) from out = sigma(z)
        if args.activation == "relu":
            return out > 0
        return 1.0 - out * out if args.activation == "tanh" else out * (1.0 - out)

    def step(x, y) -> float:
        h = x
        for i in range(layers):
            np.matmul(h, kernels[i], out=outs[i])
            outs[i] += biases[i]
            if i < layers - 1:
                activate(outs[i])
            h = outs[i]
        delta = outs[-1]  # logits -> softmax -> dL/dz, in place
        delta -= delta.max(axis=1, keepdims=True)
        np.exp(delta, out=delta)
        delta /= delta.sum(axis=1, keepdims=True)
        loss = -np.log(delta[rows, y]).mean()  # computed, as a framework's step does
        delta[rows, y] -= 1.0
        delta /= n
        for i in reversed(range(layers)):
            np.matmul((outs[i - 1] if i else x).T, delta, out=kernel_grads[i])
            delta.sum(axis=0, out=bias_grads[i])
            if i:
                delta = np.matmul(delta, kernels[i].T, out=deltas[i - 1])
                delta *= derivative(outs[i - 1])
        for begin in range(0, total, BLOCK):  # p -= lr * g
            block = slice(begin, begin + BLOCK)
            part = np.multiply(flat_grad[block], lr, out=scaled[:flat[block].size])
            flat[block] -= part
        return float(loss)

    times = []
    for i in range(args.warmup + args.steps):
        x, y = batches[i % len(batches)]
        begin = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - begin)
    timed = [t * 1e3 for t in times[args.warmup:]]
    print(json.dumps({"backend": "numpy", "step_ms_median": float(np.median(timed)),
                      "step_ms": timed, "first_step_s": times[0],
                      "versions": {"numpy": np.__version__}}))


if __name__ == "__main__":
    main()
