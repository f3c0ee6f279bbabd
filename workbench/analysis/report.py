"""`workbench report build`: a sweep → report.md + figures + report.html + results.csv, written atomically.

The folder is built beside its destination and renamed into place, so a reader never finds half a
report and a sweep name that does not exist creates nothing. The bootstrap generator is seeded and
PNGs carry no dates, so building twice gives identical files. Only a previous report (a folder of the files a
build writes, or an empty folder) is ever replaced: anything else at ``--out`` is refused before the build starts
and again just before the rename.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import figures, setting, sweep_figures, text
from .compare import Comparison, choose_baseline, compare, seeds_frame
from .document import Block, Heading, Image, Paragraph, to_html, to_markdown
from .figures import FigureInput, objective_colours, save
from ..config import ConfigError
from ..staging import staging_folder
from .load import Sweep, load_sweep
from .replay_section import replay_blocks

SEED = 0
BAND = "band = 95 % t interval over seeds; with fewer than 3 seeds, each seed's own curve instead"
# (file stem, title, what it shows, builder); the order is the order in the report.
FIGURES: tuple[tuple[str, str, str, figures.Builder], ...] = (
    ("differences", "Differences from the baseline", "Each arm's difference in the final held-out metric from "
     "its baseline (paired by seed where both ran the same seeds), 95% interval; the shaded band is the "
     "equivalence margin: an interval inside it and a TOST p < 0.05 is \"matches\", one clear of 0 is \"better\" "
     "or \"worse\" (the results table has the tests).", sweep_figures.differences),
    ("learning_curves", "Learning curves",
     "Held-out metric against optimizer step (left) and wall time (right): mean over seeds of every arm (colour: "
     f"objective; line style: its setting, named in full in the legend), {BAND}.", figures.learning_curves),
    ("entropy_curves", "Entropy", f"Mean per-token policy entropy; {BAND}.", figures.entropy_curves),
    ("shift_curves", "Policy shift", "Mean total-variation shift |π − μ| between the trained policy and the "
     "behaviour policy that sampled the tokens; where one generated batch serves several updates, the shift reached "
     f"at the last update of each batch (each new batch starts again at π = μ); {BAND}.", figures.shift_curves),
    ("token_regime", "Token regime", "How rare the sampled tokens were under the sampler μ: the share with μ < 0.1 "
     f"in each sampled batch over training, one point per batch ({BAND}) and the distribution of log10 μ at the first and last histogram step, seeds summed. "
     "Ratio clips and divergence trust regions differ on rare tokens only.", figures.token_regime),
    ("gradient_weights", "Gradient weights per token", "Distribution of g/A, the gradient weight each objective "
     "really applied per token (read from autograd), at the first, middle and last logged step, seeds pooled; the "
     "same x-range, −1 to 2.5, in every report (0: a token clipped or masked; below 0: a corrective weight), weights "
     "beyond it counted in the end bins.",
     figures.gradient_histograms),
    ("entropy_fit", "Entropy–performance fit", "R = −a·exp(H) + b fitted to (entropy, held-out metric) at the "
     "evaluation steps (Cui et al., arXiv 2505.22617), drawn over the observed entropy range only, with a 95% "
     "bootstrap band (evaluation points resampled and refitted, 400 times).",
     figures.entropy_performance),
    ("geometry", "Objective geometry", "Gradient weight g/A against the probability shift π − μ at μ = 0.5, for "
     "A > 0 (full colour) and A < 0 (light), at each parameter setting the sweep ran.", sweep_figures.geometry),
    ("delta_sensitivity", "δ sensitivity", "Final held-out metric against δ, seeds of the other swept parameters "
     "pooled; points = means, bars = 95 % t intervals over seeds (none from one seed).",
     sweep_figures.delta_sensitivity),
    ("precision", "Precision × objective", "Mean final held-out metric per objective and precision (and per "
     "setting of the other fields the sweep's space sets), with its 95 % t interval over seeds (the colours span "
     "the means only).",
     sweep_figures.precision_heatmap),
    ("importances", "Parameter importances", "Which swept parameters the trial value depends on (Optuna, "
     "PED-ANOVA).", sweep_figures.parameter_importances),
    ("history", "Optimisation history", "Each complete trial's value (the sweep's metric aggregated over its "
     "seeds) in trial order.", sweep_figures.optimisation_history),
)
STEPS = 3 + len(FIGURES)  # load, statistics, figures…, write


@dataclass
class Built:
    folder: Path
    sweep: Sweep
    comparison: Comparison
    figures: dict[str, Path]  # stem → PNG
    skipped: dict[str, str]  # stem → why it was not drawn


def build_report(name: str, out: Path | None = None, baseline: str | None = None, root: Path | None = None,
                 storage: str | None = None, on_step: Callable[[str], None] | None = None) -> Built:
    """Build the report of sweep ``name`` into ``out`` (default reports/NAME); ``on_step`` hears each stage."""
    step = on_step or (lambda _: None)
    out = Path(out) if out is not None else Path("reports") / name
    check_destination(out)
    step("loading the sweep")
    sweep = load_sweep(name, root, storage)
    baseline, named_by = choose_baseline(sweep, baseline)
    step("statistics over seeds")
    rng = np.random.default_rng(SEED)
    comparison = compare(sweep, baseline, rng, baseline_source=named_by)
    try:
        tmp = staging_folder(out)  # also removes the staging folders of builds killed before
    except (FileNotFoundError, NotADirectoryError) as err:  # /proc/foo, a file on the way: not a place for a folder
        raise ConfigError(f"--out {out}: cannot create a folder there ({err.strerror}: {err.filename})") from None
    try:
        data = FigureInput(sweep, comparison, objective_colours(sorted(sweep.runs["objective"].unique())), rng)
        drawn, skipped = {}, {}
        for stem, title, _, builder in FIGURES:
            step(f"figure: {title.lower()}")
            result = builder(data)
            if isinstance(result, str):
                skipped[stem] = result
            else:
                drawn[stem] = save(result, tmp / f"{stem}.png")
        step("writing report.md and report.html")
        blocks = _blocks(sweep, comparison, drawn, skipped)
        (tmp / "report.md").write_text(to_markdown(blocks))
        (tmp / "report.html").write_text(to_html(blocks, f"Sweep {name}: comparison report", tmp))
        text.results_frame(comparison).to_csv(tmp / "results.csv", index=False)
        seeds_frame(sweep).to_csv(tmp / "seeds.csv", index=False)
        setting.arm_measures(sweep, comparison).to_csv(tmp / "measures.csv", index=False)
        check_destination(out, {p.name for p in tmp.iterdir()})  # again: something may have been put there meanwhile
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Built(out, sweep, comparison, {k: out / v.name for k, v in drawn.items()}, skipped)


def report_files() -> set[str]:
    """The names a report folder holds: what ``build_report`` writes (the check before the rename also accepts
    whatever this build wrote, so a file added to reports later is never mistaken for a user's)."""
    return {"report.md", "report.html", "results.csv", "seeds.csv", "measures.csv",
            *(f"{stem}.png" for stem, *_ in FIGURES)}


def check_destination(out: Path, written: set[str] = frozenset()) -> None:
    """Refuse an ``--out`` that holds anything but a previous report (or nothing): a build replaces the folder whole,
    so a user's file or folder there would be deleted."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"--out {out}: is a file, not a report folder; choose a new folder or a previous report's")
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in report_files() | written or not p.is_file())
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConfigError(f"--out {out}: holds files that are not a report's ({shown}); a build replaces the folder "
                          "whole, so choose a new folder or a previous report's")


def _replace(tmp: Path, out: Path) -> None:
    """Swap the new folder in with renames only: at every moment ``out`` is a whole report or absent."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _blocks(sweep: Sweep, comparison: Comparison, drawn: dict[str, Path], skipped: dict[str, str]) -> list[Block]:
    blocks: list[Block] = [Heading(f"Sweep {sweep.name}: comparison report", 1), *text.summary(sweep, comparison),
                           *setting.blocks(sweep, comparison), *text.tables(sweep, comparison)]
    blocks.append(Heading("Figures"))
    for stem, title, caption, _ in FIGURES:
        blocks.append(Heading(title, 3))
        if stem in drawn:
            blocks.append(Image(drawn[stem].name, title, caption))
        else:
            blocks.append(Paragraph(f"Not drawn: {skipped[stem]}."))
    blocks.extend(replay_blocks(sweep))  # "The same batches, every objective" when runs kept batches (issue 19)
    blocks.extend(text.appendix(sweep, comparison))
    return blocks
