"""The `workbench` command: run · replay · sweep launch|status · report build · objectives list|plot.

Bad input (a ConfigError anywhere below) prints one line naming the field or file and exits 2.
Heavy imports happen inside the commands so that `--help` and errors stay fast.
"""

from __future__ import annotations

import functools
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console

from .config import ConfigError, machine_error

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])
objectives_app = typer.Typer(no_args_is_help=True, help="The objective library.")
sweep_app = typer.Typer(no_args_is_help=True, help="Optuna sweeps over objectives and their knobs.")
report_app = typer.Typer(no_args_is_help=True, help="Comparison reports built from the local run store.")
app.add_typer(objectives_app, name="objectives")
app.add_typer(sweep_app, name="sweep")
app.add_typer(report_app, name="report")

console = Console()
# transformers 5 renames gradient-checkpointing APIs that TRL still calls: deprecation notices the user cannot act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")


def user_errors(fn: Callable) -> Callable:
    """Turn a ConfigError, a full disk or an unwritable place into one line on stderr and exit status 2,
    without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # A log handler that cannot write (W&B's debug log on a full disk) is not the user's news: Python's own switch
        # for production, instead of a "--- Logging error ---" traceback per failed record around the one line below.
        logging.raiseExceptions = False
        try:
            return fn(*args, **kwargs)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            raise typer.Exit(2) from None
        except Exception as err:
            cause = machine_error(err)
            if cause is None:
                raise
            print(f"error: {cause.filename or 'disk'}: {cause.strerror}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@user_errors
def run(
    config: Path = typer.Argument(..., help="RunConfig YAML file"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a field: key=value (dotted for nested)"),
) -> None:
    """Train one run and print where its record and W&B files are. Ctrl-C (SIGINT) cuts it short: its record says
    ``interrupted`` and the exit status is 130, as for ``sweep launch``."""
    prepared = None
    try:
        from .config import RunConfig
        from .runner import prepare_run, train

        cfg = RunConfig.from_yaml(config, set_ or [])
        prepared = prepare_run(cfg)
        result = train(prepared, progress=True)
    except KeyboardInterrupt:  # train() has closed the record as interrupted
        where = f": run record {prepared.run_dir}" if prepared is not None and prepared.run_dir.is_dir() else ""
        print(f"interrupted{where}", file=sys.stderr)
        raise typer.Exit(130) from None
    if result.main_process:  # under torchrun/accelerate the other ranks hold no record to point at
        console.print(f"run record: {result.run_dir}")
    if result.summary.get("wandb"):
        console.print(f"W&B files:  {result.summary['wandb']['dir']} (mode {result.summary['wandb']['mode']})")
    if result.summary["status"] != "finished":
        raise typer.Exit(1)


@objectives_app.command("list")
def objectives_list() -> None:
    """The registered objectives (name, paper, parameters with their defaults and help), then the presets."""
    from rich.markup import escape
    from rich.table import Table

    from .objectives import available_objectives, available_presets, get_spec

    console.print(_spec_table(Table(show_lines=True), ("name", "paper", "parameters"),
                              [get_spec(name) for name in available_objectives()]))
    presets = Table(title="presets: objective: family@preset (given objective_params still override)")
    for column in ("preset", "settings", "source"):
        presets.add_column(column)
    for name in available_presets():
        spec = get_spec(name)
        family = get_spec(name.partition("@")[0]).params_model()
        changed = {p: d for p, d, _ in spec.parameters() if getattr(family, p) != d}
        presets.add_row(f"[bold]{escape(name)}[/]", escape(", ".join(f"{p}={d!r}" for p, d in changed.items())),
                        escape(spec.source))
    console.print(presets)
    _print_corrections()


def _print_corrections() -> None:
    """The mismatch corrections (RunConfig ``correction:``) and their presets, with sources."""
    from rich.markup import escape
    from rich.table import Table

    from .objectives import available_correction_presets, available_corrections, get_correction_spec

    table = Table(title="corrections: correction: name | family@preset | {name: ..., params} (a detached weight on "
                        "the loss from π_old/μ; the objective then reads π/π_old)", show_lines=True)
    console.print(_spec_table(table, ("name", "source", "parameters"),
                              [get_correction_spec(name) for name in available_corrections()]))
    presets = Table(title="correction presets")
    for column in ("preset", "settings", "source"):
        presets.add_column(column)
    for name in available_correction_presets():
        spec = get_correction_spec(name)
        settings = ", ".join(f"{p}={d!r}" for p, d, _ in spec.parameters())
        presets.add_row(f"[bold]{escape(name)}[/]", escape(settings), escape(spec.source))
    console.print(presets)


def _spec_table(table: Any, columns: tuple[str, str, str], specs: list[Any]) -> Any:
    """One row per registered family (objective or correction): name and summary, paper, parameters with defaults."""
    from rich.markup import escape

    for column in columns:
        table.add_column(column)
    for spec in specs:
        params = "\n".join(f"[bold]{p}[/]={escape(repr(default))}  {escape(help_)}"
                           for p, default, help_ in spec.parameters())
        table.add_row(f"[bold]{spec.name}[/]\n{escape(spec.summary)}", escape(spec.paper), params or "—")
    return table


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


# ---- sweep -----------------------------------------------------------------------------------------


@sweep_app.command("launch")
@user_errors
def sweep_launch(
    sweep_file: Path = typer.Argument(..., help="sweep YAML file (see sweeps/quickstart.yaml)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="worker processes [default: the file's]"),
    storage: Optional[str] = typer.Option(
        None, "--storage", help="Optuna RDB URL shared by many machines, e.g. postgresql://user:pw@host/db "
                                "[default: the file's, else a journal file in the sweep folder]"),
    force_new: bool = typer.Option(False, "--force-new",
                                   help="start a new study even if the file changed; the old folder is kept "
                                        "as NAME.old-<time>"),
) -> None:
    """Run (or continue) a sweep: trials in N worker processes, interrupted ones re-run, finished ones kept."""
    from .sweeps.stop import StopSignals

    signals = StopSignals()  # before the heavy imports: an early Ctrl-C or SIGTERM is a clean stop, not a traceback
    from .sweeps.launch import launch

    counts = launch(sweep_file, workers, storage, force_new, console=console, signals=signals)
    console.print(f"done: {counts.line()}", soft_wrap=True)


@sweep_app.command("status")
@user_errors
def sweep_status(
    name: str = typer.Argument(..., help="sweep name (a folder under runs/sweeps or $WORKBENCH_SWEEPS)"),
    storage: Optional[str] = typer.Option(None, "--storage", help="RDB URL [default: the one it was launched with]"),
) -> None:
    """The table of trials (parameters, value, state, seeds done) and the best configuration per objective."""
    from .sweeps.status import best_table, tally, trials_table
    from .sweeps.store import open_study

    study = open_study(name, storage=storage)
    console.print(trials_table(study))
    console.print(best_table(study))
    console.print(tally(study.get_trials(deepcopy=False)).line(), soft_wrap=True)


# ---- replay ----------------------------------------------------------------------------------------


@app.command()
@user_errors
def replay(
    target: str = typer.Argument(..., help="a run folder, a folder of runs, or a sweep name, whose runs kept batches "
                                           "(tracking.keep_batches_every)"),
    objectives: Optional[str] = typer.Option(
        None, "--objectives", help="comma list of objectives or presets, or 'all' [default: the run's own, grpo, "
                                   "dppo_tv, drpo]; pg is always added (norms are relative to it)"),
    corrections: Optional[str] = typer.Option(None, "--corrections",
                                              help="comma list of mismatch corrections to cross with every objective"),
    steps: Optional[str] = typer.Option(None, "--steps", help="comma list of kept steps [default: every kept step]"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for the tables, figures and replay.md "
                                                           "[default: <run or sweep folder>/replay]"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                          help="CPU threads [default: each run's own, as its summary.json records: "
                                               "the trainer's kernels and floats]"),
) -> None:
    """Every objective on the very batches a run trained on: one update from the kept weights, per-token gradient
    weights and parameter-gradient cosines (one update from the same state, not where training would have gone)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .batches import kept_steps
    from .replay import (parse_corrections, parse_objectives, parse_steps, replay_inputs, replay_run, resolve_runs,
                         write_replay)

    runs = resolve_runs(target)
    run_objective = None
    if len(runs) == 1:
        import json

        run_objective = json.loads((runs[0] / "config.json").read_text()).get("objective")
    names = parse_objectives(objectives, run_objective)
    correction_names = parse_corrections(corrections)
    chosen = {run: parse_steps(steps, kept_steps(run)) for run in runs}
    folder = runs[0] if len(runs) == 1 else (Path(target) if Path(target).is_dir() else _sweep_folder(target))
    out = out if out is not None else folder / "replay"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    inputs = replay_inputs(chosen, names, correction_names)
    replays = []
    with Progress(TextColumn("[bold]replay[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("loading", total=sum(map(len, chosen.values())))
        for run, run_steps in chosen.items():
            bar.update(task, description=f"{run.name}: loading the policy")
            replays.append(replay_run(run, names, correction_names, run_steps,
                                      top_k_optional=objectives is not None and objectives.strip() == "all",
                                      threads=threads,
                                      on_step=lambda k, r=run: bar.update(task, advance=1,
                                                                          description=f"{r.name}: step {k}")))
    paths = write_replay(replays, out, str(target), inputs)
    console.print(f"replay: {paths['replay.md']}", soft_wrap=True)


def _sweep_folder(name: str) -> Path:
    from .sweeps.store import sweep_folder

    return sweep_folder(name)


# ---- report ----------------------------------------------------------------------------------------


@report_app.command("build")
@user_errors
def report_build(
    name: str = typer.Argument(..., help="sweep name (a folder under runs/sweeps or $WORKBENCH_SWEEPS)"),
    out: Optional[Path] = typer.Option(None, "--out", help="report folder [default: reports/NAME]"),
    baseline: Optional[str] = typer.Option(
        None, "--baseline", help="the arm the others are compared against: an objective with one arm, or a setting "
                               "'drpo delta=0.15' [default: the sweep file's baseline:, else its single grpo arm]"),
    wandb_: bool = typer.Option(False, "--wandb", help="also publish a W&B report when logged in"),
    storage: Optional[str] = typer.Option(None, "--storage", help="RDB URL [default: the one it was launched with]"),
) -> None:
    """Build report.md, report.html (self-contained) and the figures of a sweep, finished or still running."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .analysis.report import STEPS, build_report

    with Progress(TextColumn("[bold]report[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("", total=STEPS)
        built = build_report(name, out, baseline, storage=storage, on_step=lambda stage: bar.update(task, description=stage, advance=1))
    console.print(f"report: {built.folder / 'report.md'}\n        {built.folder / 'report.html'}", soft_wrap=True)
    for note in built.comparison.notes:
        console.print(f"note: {note}", soft_wrap=True)
    if wandb_:
        _publish_wandb(built)


@report_app.command("verdicts")
@user_errors
def report_verdicts(
    folder: Path = typer.Argument(..., help="a report folder holding seeds.csv and results.csv"),
    sweep: Path = typer.Option(..., "--sweep", help="the sweep file the report was built from (its families:)"),
) -> None:
    """Recompute a committed report's verdicts from its seeds.csv under the sweep file's families, multiplicity and
    margin, without its runs: results.csv's verdict columns and verdicts.md are rewritten."""
    from .analysis.recompute import NOTE, recompute

    table = recompute(folder, sweep)
    words = table["verdict"].dropna().value_counts()
    console.print(f"verdicts: {', '.join(f'{n} {w}' for w, n in words.items())} → {folder / 'results.csv'}, "
                  f"{folder / NOTE}", soft_wrap=True)


def _publish_wandb(built) -> None:
    from .analysis.wandb_report import publish, skip_reason

    reason = skip_reason()
    if reason:
        console.print(f"W&B report: skipped, {reason}; the local report above is complete.", soft_wrap=True)
        return
    try:
        console.print(f"W&B report: {publish(built.sweep, built.comparison)}", soft_wrap=True)
    except Exception as err:  # noqa: BLE001 - publishing is a courtesy; the local report is already written
        console.print(f"W&B report: not published ({type(err).__name__}: {err})", soft_wrap=True)
