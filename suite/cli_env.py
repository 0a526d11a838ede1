"""``suite env``: the backends' own virtual environments, created, listed and removed."""

from __future__ import annotations

from typing import Annotated

import typer

from suite import listings, registry, rows
from suite.errors import UserError
from suite.rows import FormatOption
from suite.terminal import console, notes

env_app = typer.Typer(help="Backends' own virtual environments: create, list, remove.",
                      no_args_is_help=True)


@env_app.command("create")
def env_create(
    backend: Annotated[str, typer.Argument(
        help="A backend with requirements of its own, or BACKEND@VERSION (numpy@1.26).")],
) -> None:
    """Build (or find) the environment a backend runs in."""
    from suite import envs

    spec = registry.environment_of(backend)
    if spec is None:
        raise UserError(f"backend {backend!r} runs in the main environment; nothing to create",
                        hint=f"ask for a version: suite env create {backend}@VERSION")
    if spec.path.exists():
        console.print(f"{spec.name}: already built at {spec.path}")
        return
    with console.status(f"building {spec.name}: {' '.join(spec.requirements)}") as status:
        envs.ensure(spec, lambda line: status.update(f"{spec.name}: {line[:90]}"))
    console.print(f"built {spec.name} at {spec.path}")


@env_app.command("list")
def env_list(fmt: FormatOption = None) -> None:
    """The environments built so far, with their requirements and sizes."""
    from suite import envs

    fmt = rows.choose(fmt, console)
    found = listings.environments()
    if not found:
        notes(fmt).print(f"no environments under {envs.root()}")
    if found or fmt != "table":  # a program still gets the header line (or [])
        rows.write(console, found, listings.ENV_COLUMNS, fmt, f"Environments ({envs.root()})")


@env_app.command("remove")
def env_remove(
    name: Annotated[str, typer.Argument(help="The environment's name, as `suite env list` "
                                              "shows it.")],
) -> None:
    """Delete a backend's environment (it is rebuilt on next use)."""
    from suite import envs

    for path in envs.remove(name):
        console.print(f"removed {path}")
