"""A hand-written MXNet 1.9 Gluon training loop: the reference for the suite's MXNet timing.

Gluon's idiom: a HybridSequential of Dense blocks and the loss, hybridized (cached,
statically allocated graphs), autograd.record around the forward pass and the loss,
backward, then gluon.Trainer.step; the engine is asynchronous, so each timed step ends
with mx.nd.waitall(). Run it with the MXNet environment's interpreter (NumPy < 1.24).
Prints one JSON line. Standard library, NumPy and mxnet only.
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

    # read when mxnet is imported: the operators' OpenMP pool; no tensor cores (TF32)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ["MXNET_CUDA_ALLOW_TENSOR_CORE"] = "0"
    import mxnet as mx
    from mxnet import autograd, gluon

    ctx = mx.gpu(0) if args.device == "cuda" else mx.cpu()
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((args.batch_size, sizes[0])).astype(np.float32),
                rng.integers(0, sizes[-1], args.batch_size)) for _ in range(8)]
    # on the device before the clock; Gluon's labels are float32 class indices
    batches = [(mx.nd.array(x, ctx=ctx), mx.nd.array(y, ctx=ctx, dtype="float32"))
               for x, y in batches]

    net = gluon.nn.HybridSequential()
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        hidden = i < len(sizes) - 2
        net.add(gluon.nn.Dense(fan_out, activation=args.activation if hidden else None,
                               in_units=fan_in))
    net.initialize(ctx=ctx)
    init = np.random.default_rng(1)
    for i, dense in enumerate(net):
        fan_in, fan_out = sizes[i], sizes[i + 1]
        limit = np.sqrt(6.0 / (fan_in + fan_out))  # glorot uniform; Gluon keeps W as (out, in)
        dense.weight.set_data(mx.nd.array(init.uniform(-limit, limit, (fan_in, fan_out)).T))
        dense.bias.set_data(mx.nd.zeros(fan_out))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()  # sparse labels, from logits
    for block in (net, loss_fn):
        block.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": args.learning_rate})
    mx.nd.waitall()

    times = []
    for i in range(args.warmup + args.steps):
        x, y = batches[i % len(batches)]
        start = time.perf_counter()
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(args.batch_size)
        mx.nd.waitall()
        times.append(time.perf_counter() - start)

    timed = [t * 1e3 for t in times[args.warmup:]]
    print(json.dumps({
        "backend": "mxnet", "step_ms_median": float(np.median(timed)), "step_ms": timed,
        "first_step_s": times[0],
        "versions": {"mxnet": mx.__version__, "numpy": np.__version__},
    }))


if __name__ == "__main__":
    main()
