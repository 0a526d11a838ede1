"""A PyTorch training loop written by hand, the reference for the suite's torch timing.

Dense layers, softmax cross-entropy on integer labels, plain SGD, float32; one JSON line
on stdout. The same command-line interface as every script in backends/standalone/.
"""

import argparse
import json
import time

import numpy as np
import torch

ACTIVATIONS = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}


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

    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)

    rng = np.random.default_rng(0)
    batches = [(torch.as_tensor(rng.standard_normal((args.batch_size, sizes[0]),
                                                    dtype=np.float32), device=device),
                torch.as_tensor(rng.integers(0, sizes[-1], args.batch_size), device=device))
               for _ in range(8)]

    init = np.random.default_rng(1)
    layers: list[torch.nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = torch.nn.Linear(fan_in, fan_out, device=device)
        limit = np.sqrt(6.0 / (fan_in + fan_out))  # glorot uniform
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(
                init.uniform(-limit, limit, (fan_out, fan_in)).astype(np.float32)))
            linear.bias.zero_()
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[args.activation]())
    model = torch.nn.Sequential(*layers)
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=0.0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
        sync()

    times = []
    for i in range(args.warmup + args.steps):
        x, y = batches[i % len(batches)]
        start = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - start)
    timed = [t * 1e3 for t in times[args.warmup:]]
    print(json.dumps({"backend": "torch", "step_ms_median": float(np.median(timed)),
                      "step_ms": timed, "first_step_s": times[0],
                      "versions": {"torch": torch.__version__, "numpy": np.__version__}}))


if __name__ == "__main__":
    main()
