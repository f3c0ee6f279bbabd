"""The `workbench` command: run · sweep launch|status · report build · objectives list|plot.

Bad input (a ConfigError anywhere below) prints one line naming the field or file and exits 2.
Heavy imports happen inside the commands so that `--help` and errors stay fast.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from .config import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])
objectives_app = typer.Typer(no_args_is_help=True, help="The objective library.")
sweep_app = typer.Typer(no_args_is_help=True, help="Optuna sweeps over objectives and their knobs.")
report_app = typer.Typer(no_args_is_help=True, help="Comparison reports built from the local run store.")
app.add_typer(objectives_app, name="objectives")
app.add_typer(sweep_app, name="sweep")
app.add_typer(report_app, name="report")

console = Console()


def user_errors(fn: Callable) -> Callable:
    """Turn a ConfigError into one line on stderr and exit status 2, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@user_errors
def run(
    config: Path = typer.Argument(..., help="RunConfig YAML file"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a field: key=value (dotted for nested)"),
) -> None:
    """Train one run and print where its record and W&B files are."""
    from .config import RunConfig
    from .runner import prepare_run, train

    cfg = RunConfig.from_yaml(config, set_ or [])
    prepared = prepare_run(cfg)
    result = train(prepared, progress=True)
    console.print(f"run record: {result.run_dir}")
    if result.summary.get("wandb"):
        console.print(f"W&B files:  {result.summary['wandb']['dir']} (mode {result.summary['wandb']['mode']})")
    if result.summary["status"] != "finished":
        raise typer.Exit(1)


@objectives_app.command("list")
def objectives_list() -> None:
    """The registered objectives: name, paper, parameters with their defaults and help."""
    from rich.markup import escape
    from rich.table import Table

    from .objectives import available_objectives, get_spec

    table = Table(show_lines=True)
    for column in ("name", "paper", "parameters"):
        table.add_column(column)
    for name in available_objectives():
        spec = get_spec(name)
        params = "\n".join(f"[bold]{p}[/]={escape(repr(default))}  {escape(help_)}"
                           for p, default, help_ in spec.parameters())
        table.add_row(f"[bold]{name}[/]\n{escape(spec.summary)}", escape(spec.paper), params or "—")
    console.print(table)


@objectives_app.command("plot")
def objectives_plot(
    out: Path = typer.Option(Path("reports/objectives"), "--out", help="folder for the PNGs"),
    only: Optional[list[str]] = typer.Option(None, "--only", help="draw just this objective (repeatable)"),
) -> None:
    """Draw each objective's gradient weight g/A against π−μ (A>0 and A<0, two settings); print the PNG paths."""
    from .objectives.plotting import plot_objectives

    try:
        paths = plot_objectives(out, only)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(2) from None
    for path in paths:
        console.print(str(path), soft_wrap=True)
