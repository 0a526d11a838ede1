"""The network spec: parse, validate and normalize it.

A spec comes from a TOML file, a built-in name or the Python API (``suite.api``); all
three go through :func:`from_dict` and end as the same frozen :class:`Spec`, whose
:meth:`Spec.to_dict` is the normalized form saved in run.json and sent to workers.
Worker side: standard library only.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from suite import catalogue
from suite.errors import SpecError, UserError
from suite.record_policy import parse_policy, parse_size
from suite.spec_reader import FieldReader


@dataclass(frozen=True)
class Component:
    """A named part with every hyperparameter explicit (activation, loss, optimizer)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


@dataclass(frozen=True)
class Layer:
    units: int
    activation: Component
    kernel_initializer: str = "glorot_uniform"
    bias_initializer: str = "zeros"
    kernel_l2: float = 0.0  # Keras L2 regularizer: loss += kernel_l2 * sum(kernel**2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "activation": self.activation.to_dict(),
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
            "kernel_regularizer": {"l2": self.kernel_l2} if self.kernel_l2 else None,
        }


@dataclass(frozen=True)
class Training:
    batch_size: int = 32
    epochs: int = 1
    seed: int = 0
    dtype: str = "float32"
    shuffle: bool = True
    max_steps: int | None = None  # stop after this many steps in all (None: every batch)


@dataclass(frozen=True)
class DataSource:
    name: str = "blobs"  # a built-in dataset or a file path
    target: str | None = None  # the target column of a CSV or Parquet file
    standardize: bool = False


@dataclass(frozen=True)
class Recording:
    """Which lockstep steps keep their gradients and parameters (every step keeps its loss):
    ``all``, ``auto`` (as many as ``budget`` holds) or ``first=N,every=K``; see
    suite.record."""

    steps: str = "auto"
    budget: str = "1GB"  # the whole run's record, every backend together


@dataclass(frozen=True)
class Bench:
    """``suite bench``'s default grid; an empty tuple keeps the spec's own value."""

    widths: tuple[int, ...] = ()  # units of every hidden layer
    depths: tuple[int, ...] = ()  # number of hidden layers
    batch_sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Spec:
    name: str
    input_dim: int
    layers: tuple[Layer, ...]
    loss: Component
    optimizer: Component
    training: Training = Training()
    data: DataSource = DataSource()
    bench: Bench = Bench()
    record: Recording = Recording()

    @property
    def output_activation(self) -> str:
        return self.layers[-1].activation.name

    @property
    def fused_output(self) -> bool:
        """True when the output activation is folded into a from-logits loss."""
        return self.loss.name in catalogue.FUSED_OUTPUT

    @property
    def sizes(self) -> list[int]:
        return [self.input_dim] + [layer.units for layer in self.layers]

    def features(self) -> list[str]:
        """Every feature this spec uses, as ``kind:name`` strings for ``supports()``."""
        found = [f"activation:{layer.activation.name}" for layer in self.layers]
        found += [f"initializer:{layer.kernel_initializer}" for layer in self.layers]
        found += [f"initializer:{layer.bias_initializer}" for layer in self.layers]
        if any(layer.kernel_l2 for layer in self.layers):
            found.append("regularizer:l2")
        found += [f"loss:{self.loss.name}", f"optimizer:{self.optimizer.name}"]
        found += [f"optimizer:{self.optimizer.name}+{variant}"
                  for variant in self.optimizer_variants()]
        # and each in this dtype (activation:gelu@float64), for a gap in one dtype only
        dtype = self.training.dtype
        found += [f"{f}@{dtype}" for f in found if not f.startswith("initializer:")]
        found.append(f"dtype:{dtype}")
        return list(dict.fromkeys(found))

    def optimizer_variants(self) -> list[str]:
        """The optimizer's options that change its algorithm (``optimizer:adam+amsgrad`` is
        a feature of its own, so that a backend can declare one unsupported)."""
        p = self.optimizer.params
        flags = {"momentum": float(p.get("momentum", 0.0)) > 0,
                 "nesterov": bool(p.get("nesterov")) and float(p.get("momentum", 0.0)) > 0,
                 "amsgrad": bool(p.get("amsgrad")), "centered": bool(p.get("centered"))}
        return [name for name, on in flags.items() if on]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_dim": self.input_dim,
            "layers": [layer.to_dict() for layer in self.layers],
            "loss": self.loss.to_dict(),
            "optimizer": self.optimizer.to_dict(),
            "training": dataclasses.asdict(self.training),
            "data": dataclasses.asdict(self.data),
            "bench": {key: list(value) for key, value in dataclasses.asdict(self.bench).items()
                      if value},
            "record": dataclasses.asdict(self.record),
        }

    def with_training(self, **changes: Any) -> Spec:
        """A copy with training values replaced (None leaves a value as it is)."""
        given = {k: v for k, v in changes.items() if v is not None}
        raw = self.to_dict()
        raw["training"].update(given)
        return from_dict(raw, source="command line")

    def with_data(self, **changes: Any) -> Spec:
        given = {k: v for k, v in changes.items() if v is not None}
        raw = self.to_dict()
        raw["data"].update(given)
        return from_dict(raw, source="command line")


# ---------------------------------------------------------------------------- loading


def load(source: str | Path) -> Spec:
    """A spec from a built-in name or a TOML file path."""
    text = str(source)
    if text in builtin_names():
        return builtin(text)
    path = Path(text)
    if path.suffix != ".toml" and not path.exists():
        raise SpecError(
            f"no built-in spec or file named {text!r}",
            hint=f"built-in specs: {', '.join(builtin_names())}; or give a path to a .toml file",
        )
    return load_toml(path)


def load_toml(path: Path) -> Spec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("file not found", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the file ({exc})", where=str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"malformed TOML: {exc}", where=str(path)) from None
    raw.setdefault("name", Path(path).stem)
    return from_dict(raw, source=str(path), text=text)


def builtin_names() -> list[str]:
    folder = resources.files("suite") / "builtin_specs"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def builtin(name: str) -> Spec:
    folder = resources.files("suite") / "builtin_specs"
    text = (folder / f"{name}.toml").read_text(encoding="utf-8")
    return from_dict(tomllib.loads(text), source=f"built-in spec {name}", text=text)


# ---------------------------------------------------------------------------- validation


def from_dict(raw: dict[str, Any], source: str = "spec", text: str | None = None) -> Spec:
    """Validate a raw spec (parsed TOML or the Python API's dict) into a normalized Spec."""
    r = FieldReader(source, text)
    if not isinstance(raw, dict):
        r.fail((), f"expected a table of spec fields. Received: {type(raw).__name__}")
    known = {"name", "input_dim", "layers", "loss", "optimizer", "training", "data", "bench",
             "record"}
    for key in raw:
        if key not in known:
            r.fail((key,), f"unknown field {key!r}; expected: {', '.join(sorted(known))}")
    for key in ("input_dim", "layers", "loss", "optimizer"):
        if key not in raw:
            r.fail((), f"missing field {key!r}")
    name = raw.get("name", "spec")
    if not isinstance(name, str) or not name.strip():
        r.fail(("name",), f"expected a non-empty string. Received: {name!r}")
    input_dim = r.number(raw["input_dim"], ("input_dim",), integer=True, minimum=1)
    if not isinstance(raw["layers"], list) or not raw["layers"]:
        r.fail(("layers",), "expected at least one layer ([[layers]] tables)")
    layers = tuple(_layer(r, item, i) for i, item in enumerate(raw["layers"]))
    loss = Component(*r.component(raw["loss"], catalogue.LOSSES, ("loss",), "loss"))
    optimizer = Component(*r.component(raw["optimizer"], catalogue.OPTIMIZERS, ("optimizer",),
                                        "optimizer"))
    if optimizer.params["learning_rate"] <= 0:
        r.fail(("optimizer", "learning_rate"), "expected a positive number. "
               f"Received: {optimizer.params['learning_rate']!r}")
    _check_output(r, layers, loss)
    training = _training(r, raw.get("training", {}))
    data = _data(r, raw.get("data", {}))
    bench = _bench(r, raw.get("bench", {}))
    recording = _recording(r, raw.get("record", {}))
    return Spec(name.strip(), input_dim, layers, loss, optimizer, training, data, bench,
                recording)


def _layer(r: FieldReader, raw: Any, i: int) -> Layer:
    path: tuple[str | int, ...] = ("layers", i)
    if not isinstance(raw, dict):
        r.fail(path, f"expected a table with 'units'. Received: {raw!r}")
    known = {"units", "activation", "kernel_initializer", "bias_initializer",
             "kernel_regularizer", "type"}
    for key in raw:
        if key not in known:
            r.fail(path + (key,), f"unknown layer field {key!r}; expected: "
                                  f"{', '.join(sorted(known))}")
    if raw.get("type", "Dense") not in ("Dense", "dense"):
        r.fail(path + ("type",), f"only Dense layers are supported. Received: {raw['type']!r}")
    if "units" not in raw:
        r.fail(path, "missing field 'units'")
    units = r.number(raw["units"], path + ("units",), integer=True)
    if units < 1:
        r.fail(path + ("units",), f"expected a positive integer. Received: units={units}")
    activation = Component(*r.component(raw.get("activation", "linear"), catalogue.ACTIVATIONS,
                                         path + ("activation",), "activation"))
    inits = {}
    for key, default in (("kernel_initializer", "glorot_uniform"),
                         ("bias_initializer", "zeros")):
        inits[key] = r.name(raw.get(key, default), catalogue.INITIALIZERS, path + (key,),
                            "initializer")
    return Layer(units, activation, inits["kernel_initializer"], inits["bias_initializer"],
                 _l2(r, raw.get("kernel_regularizer"), path + ("kernel_regularizer",)))


def _l2(r: FieldReader, raw: Any, path) -> float:
    if raw is None:
        return 0.0
    if raw == "l2":
        return 0.01  # Keras's default L2 factor
    if not isinstance(raw, dict) or set(raw) != {"l2"}:
        r.fail(path, f"expected 'l2' or a table {{ l2 = <factor> }}. Received: {raw!r}")
    return r.number(raw["l2"], path + ("l2",), minimum=0.0)


def _check_output(r: FieldReader, layers: tuple[Layer, ...], loss: Component) -> None:
    for i, layer in enumerate(layers[:-1]):
        if layer.activation.name == "softmax":
            r.fail(("layers", i, "activation"), "softmax is only allowed on the output layer")
    out = layers[-1]
    path = ("layers", len(layers) - 1, "activation")
    needed = catalogue.FUSED_OUTPUT.get(loss.name)
    if needed and out.activation.name != needed:
        r.fail(path, f"loss {loss.name} needs a {needed} output layer (fused into the loss, "
                     f"from logits). Received: {out.activation.name}",
               hint=f"set activation = \"{needed}\" on the last layer")
    if out.activation.name == "softmax" and needed != "softmax":
        r.fail(path, f"a softmax output needs categorical or sparse categorical cross-entropy. "
                     f"Received loss: {loss.name}")
    if needed == "softmax" and out.units < 2:
        r.fail(("layers", len(layers) - 1, "units"),
               f"{loss.name} needs at least 2 output units. Received: units={out.units}")


def _training(r: FieldReader, raw: Any) -> Training:
    values = r.table(raw, "training", dataclasses.asdict(Training()), "a table")
    path = ("training",)
    for key in ("batch_size", "epochs"):
        values[key] = r.number(values[key], path + (key,), integer=True)
        if values[key] < 1:
            r.fail(path + (key,), f"expected a positive integer. Received: {key}={values[key]}")
    values["seed"] = r.number(values["seed"], path + ("seed",), integer=True, minimum=0)
    if values["max_steps"] is not None:
        values["max_steps"] = r.number(values["max_steps"], path + ("max_steps",),
                                       integer=True, positive=True)
    values["dtype"] = r.name(values["dtype"], catalogue.DTYPES, path + ("dtype",), "dtype")
    if not isinstance(values["shuffle"], bool):
        r.fail(path + ("shuffle",), f"expected true or false. Received: {values['shuffle']!r}")
    return Training(**values)


def _data(r: FieldReader, raw: Any) -> DataSource:
    if isinstance(raw, str):
        raw = {"name": raw}
    values = r.table(raw, "data", dataclasses.asdict(DataSource()), "a table with 'name'")
    if not isinstance(values["name"], str) or not values["name"]:
        r.fail(("data", "name"), f"expected a dataset name or file path. "
                                 f"Received: {values['name']!r}")
    if values["target"] is not None and not isinstance(values["target"], str):
        r.fail(("data", "target"), f"expected a column name. Received: {values['target']!r}")
    if not isinstance(values["standardize"], bool):
        r.fail(("data", "standardize"), f"expected true or false. "
                                        f"Received: {values['standardize']!r}")
    return DataSource(**values)


def _bench(r: FieldReader, raw: Any) -> Bench:
    if not isinstance(raw, dict):
        r.fail(("bench",), f"expected a table of widths, depths and batch_sizes. "
                           f"Received: {raw!r}")
    fields = [f.name for f in dataclasses.fields(Bench)]
    values = {}
    for key, value in raw.items():
        if key not in fields:
            r.fail(("bench", key), f"unknown bench field {key!r}; expected: {', '.join(fields)}")
        if not isinstance(value, list) or not value:
            r.fail(("bench", key), f"expected a non-empty list of positive integers. "
                                   f"Received: {value!r}")
        values[key] = tuple(r.number(v, ("bench", key), integer=True, positive=True)
                            for v in value)
    return Bench(**values)


def _recording(r: FieldReader, raw: Any) -> Recording:
    values = r.table(raw, "record", dataclasses.asdict(Recording()),
                     "a table of steps and budget")
    for key, parse in (("steps", parse_policy), ("budget", parse_size)):
        value = values[key]
        if key == "budget" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = f"{value}MB"
        if not isinstance(value, str):
            r.fail(("record", key), f"expected a string. Received: {value!r}")
        try:
            parse(value)
        except UserError as exc:
            r.fail(("record", key), exc.message, exc.hint)
        values[key] = value.strip()
    return Recording(**values)
