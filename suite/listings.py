"""What the listing commands list, as rows (see suite.rows): ``suite backends``, ``suite
specs`` and ``suite env list``. Each row's first field is its name."""

from __future__ import annotations

from typing import Any

from suite import catalogue, registry
from suite.rows import Column

BACKEND_COLUMNS = [
    Column("backend", style="bold"),
    Column("available", styles={"yes": "green", "no": "red"}),
    Column("versions"),
    Column("reason"),
    Column("target", under="backend", style="dim"),
]
SPEC_COLUMNS = [Column(key) for key in ("name", "network", "loss", "optimizer", "data")]
ENV_COLUMNS = [
    Column("name"),
    Column("requirements"),
    Column("size_mb", title="size MB", justify="right"),
    Column("built"),
    Column("build_s", title="build s", justify="right", missing="–"),
    Column("path", table=False),
]


def backends() -> list[dict[str, Any]]:
    """Every registered backend: installed or not, its framework versions, why not."""
    return [{"backend": info.name, "available": info.available, "versions": info.versions,
             "reason": info.reason, "target": info.target}
            for info in registry.all_backends()]


def specs() -> list[dict[str, Any]]:
    """The built-in specs: network, loss, optimizer and data of each."""
    from suite import spec as spec_module

    found = []
    for name in spec_module.builtin_names():
        s = spec_module.builtin(name)
        found.append({"name": name, "network": describe_net(s), "loss": s.loss.name,
                      "optimizer": s.optimizer.name, "data": s.data.name})
    return found


def vocabulary() -> dict[str, list[str]]:
    """Every other name a spec may use, by kind: datasets, activations, losses, ..."""
    from suite import datasets

    return {"datasets": list(datasets.builtin_names()),
            "activations": list(catalogue.ACTIVATIONS), "losses": list(catalogue.LOSSES),
            "optimizers": list(catalogue.OPTIMIZERS),
            "initializers": list(catalogue.INITIALIZERS)}


def environments() -> list[dict[str, Any]]:
    """The backends' environments built so far: requirements, size, when and how long."""
    from suite import envs

    return [{"name": info.name, "requirements": list(info.requirements),
             "size_mb": round(info.size_mb, 1), "built": info.created, "build_s": info.build_s,
             "path": str(info.path)} for info in envs.installed()]


def describe_net(spec) -> str:
    """``64 → 64 relu → 10 softmax``: the input width, then each layer's units and
    activation."""
    layers = " → ".join(f"{layer.units} {layer.activation.name}" for layer in spec.layers)
    return f"{spec.input_dim} → {layers}"
