"""A Keras 3 (TensorFlow backend) training loop written by hand, the reference for the
suite's keras timing: a compiled Sequential, stepped by calling Keras's own compiled train
function (``model.train_function``, what fit() calls) on tensors made before the clock.

Dense layers, softmax cross-entropy on integer labels, plain SGD, float32; one JSON line
on stdout. The same command-line interface as every script in backends/standalone/.
"""

import argparse
import json
import os
import time

os.environ["KERAS_BACKEND"] = "tensorflow"  # before keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="784,512,512,10")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--activation", default="relu", choices=["relu", "sigmoid", "tanh"])
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

    with keras.device(device):
        rng = np.random.default_rng(0)
        batches = [(keras.ops.convert_to_tensor(
                        rng.standard_normal((args.batch_size, sizes[0]), dtype=np.float32)),
                    keras.ops.convert_to_tensor(rng.integers(0, sizes[-1], args.batch_size)))
                   for _ in range(8)]
        model = keras.Sequential(
            [keras.Input((sizes[0],))]
            + [keras.layers.Dense(units, activation=args.activation) for units in sizes[1:-1]]
            + [keras.layers.Dense(sizes[-1])])
        init, weights = np.random.default_rng(1), []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            limit = np.sqrt(6.0 / (fan_in + fan_out))  # glorot uniform
            weights += [init.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32),
                        np.zeros(fan_out, np.float32)]
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=args.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.make_train_function()
        train_function = model.train_function  # takes an iterator of (x, y) batches

        times = []
        for i in range(args.warmup + args.steps):
            batch = batches[i % len(batches)]
            start = time.perf_counter()
            logs = train_function(iter([batch]))
            if args.device != "cpu":
                logs["loss"].numpy()  # GPU kernels are queued: a host read waits for them
            times.append(time.perf_counter() - start)
    timed = [t * 1e3 for t in times[args.warmup:]]
    print(json.dumps({"backend": "keras", "step_ms_median": float(np.median(timed)),
                      "step_ms": timed, "first_step_s": times[0],
                      "versions": {"keras": keras.__version__, "tensorflow": tf.__version__,
                                   "numpy": np.__version__}}))


if __name__ == "__main__":
    main()
