"""A TensorFlow (no Keras) training loop written by hand, the reference for the suite's
tensorflow timing: tf.Variables, a tf.function step with GradientTape (called as its
concrete function), plain SGD.

Dense layers, softmax cross-entropy on integer labels, float32; one JSON line on stdout.
The same command-line interface as every script in backends/standalone/.
"""

import argparse
import json
import time

import numpy as np
import tensorflow as tf

ACTIVATIONS = {"relu": tf.nn.relu, "sigmoid": tf.math.sigmoid, "tanh": tf.math.tanh}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="784,512,512,10")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--activation", default="relu", choices=sorted(ACTIVATIONS))
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.config.experimental.enable_tensor_float_32_execution(False)
    device = {"cpu": "/CPU:0", "cuda": "/GPU:0"}[args.device]
    activation = ACTIVATIONS[args.activation]

    with tf.device(device):
        rng = np.random.default_rng(0)
        batches = [(tf.constant(rng.standard_normal((args.batch_size, sizes[0]),
                                                    dtype=np.float32)),
                    tf.constant(rng.integers(0, sizes[-1], args.batch_size)))
                   for _ in range(8)]
        init = np.random.default_rng(1)
        params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            limit = np.sqrt(6.0 / (fan_in + fan_out))  # glorot uniform
            params.append(tf.Variable(
                init.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)))
            params.append(tf.Variable(tf.zeros(fan_out)))
        lr = tf.constant(args.learning_rate, tf.float32)

        @tf.function(jit_compile=False)
        def train_step(x, y):
            with tf.GradientTape() as tape:
                h = x
                for i in range(0, len(params) - 2, 2):
                    h = activation(tf.matmul(h, params[i]) + params[i + 1])
                logits = tf.matmul(h, params[-2]) + params[-1]
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            for p, g in zip(params, tape.gradient(loss, params), strict=True):
                p.assign_sub(lr * g)
            return loss

        # The traced graph itself: calls skip the tf.function's per-call dispatch.
        step = train_step.get_concrete_function(*batches[0])
        times = []
        for i in range(args.warmup + args.steps):
            x, y = batches[i % len(batches)]
            start = time.perf_counter()
            loss = step(x, y)
            if args.device != "cpu":
                loss.numpy()  # GPU kernels are queued: a host read waits for them
            times.append(time.perf_counter() - start)
    timed = [t * 1e3 for t in times[args.warmup:]]
    print(json.dumps({"backend": "tensorflow", "step_ms_median": float(np.median(timed)),
                      "step_ms": timed, "first_step_s": times[0],
                      "versions": {"tensorflow": tf.__version__, "numpy": np.__version__}}))


if __name__ == "__main__":
    main()
