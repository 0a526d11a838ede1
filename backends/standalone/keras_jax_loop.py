"""A Keras 3 (JAX backend) training loop written by hand, the reference for the suite's
keras-jax timing: a compiled Sequential, stepped by calling Keras's own jitted train
function (``model.train_function``) on tensors made before the clock, threading its state
(the variables' values) from one step to the next as fit() does, and writing it back to
the model's variables once at the end.

Dense layers, softmax cross-entropy on integer labels, plain SGD, float32; one JSON line
on stdout. The same command-line interface as every script in backends/standalone/.
"""

import argparse
import json
import os
import time

import numpy as np

os.environ["KERAS_BACKEND"] = "jax"  # before keras is imported


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

    os.environ["NPROC"] = str(args.threads)  # XLA's CPU pool size, read when jax starts
    import jax
    import keras

    jax.config.update("jax_default_matmul_precision", "highest")
    device = {"cpu": "cpu:0", "cuda": "gpu:0"}[args.device]

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
        model.optimizer.build(model.trainable_variables)
        model.make_train_function()
        # (state, iterator of (x, y) batches) -> (logs, state); the state is donated
        train_function = model.train_function
        state = ([v.value for v in model.trainable_variables],
                 [v.value for v in model.non_trainable_variables],
                 [v.value for v in model.optimizer.variables],
                 [v.value for v in model.metrics_variables])

        times = []
        for i in range(args.warmup + args.steps):
            batch = batches[i % len(batches)]
            start = time.perf_counter()
            logs, state = train_function(state, iter([batch]))
            jax.block_until_ready(logs)  # dispatch is asynchronous
            times.append(time.perf_counter() - start)
        for variable, value in zip(model.trainable_variables, state[0], strict=True):
            variable.assign(value)
    timed = [t * 1e3 for t in times[args.warmup:]]
    print(json.dumps({"backend": "keras-jax", "step_ms_median": float(np.median(timed)),
                      "step_ms": timed, "first_step_s": times[0],
                      "versions": {"keras": keras.__version__, "jax": jax.__version__,
                                   "numpy": np.__version__}}))


if __name__ == "__main__":
    main()
