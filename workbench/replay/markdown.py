"""replay.md: the summary's tables in Markdown (the report's section builds its own from the same summary)."""

from __future__ import annotations

from typing import Any


def cosine_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the mean cosine matrix with the norm relative to pg as the last column."""
    labels = summary["objectives"]
    header = ["", *labels, "‖∇‖ / ‖∇pg‖"]
    rows = [[a, *(_fmt(v, 3) for v in summary["cosine"][i]), _fmt(summary["norm_vs_pg"][i], 3)]
            for i, a in enumerate(labels)]
    return header, rows


def rare_table(summary: dict[str, Any], mu: str = "mu<0.01") -> tuple[list[str], list[list[str]]]:
    """(header, rows): per objective, % of tokens in μ group ``mu`` (and all tokens) changed / flipped / zeroed."""
    header = ["objective", "tokens", "changed >10%", "flipped", "zero", "mean g/A", "all tokens: changed"]
    by = {(r["objective"], r["mu"], r["advantage"]): r for r in summary["tokens"]}
    rows = []
    for label in summary["objectives"]:
        r, a = by.get((label, mu, "all")), by.get((label, "all", "all"))
        if r is None:
            continue
        rows.append([label, str(r["tokens"]), _pct(r["frac_changed"]), _pct(r["frac_flipped"]),
                     _pct(r["frac_zero"]), _fmt(r["mean_weight"], 3), _pct(a["frac_changed"] if a else None)])
    return header, rows


def _fmt(v: float | None, digits: int) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(summary: dict[str, Any], title: str, scatter_step: int) -> str:
    parts = [f"# Replay: {title}",
             f"{len(summary['runs'])} run(s), {summary['steps']} kept step(s). One update from the kept state for every "
             "objective: whether and where they push the weights differently on the run's own batches, not where "
             "training under each would have gone.",
             "## Cosine of the parameter gradients (mean over steps) and norm relative to pg",
             _md_table(*cosine_table(summary))]
    for mu, name in (("mu<0.01", "μ < 0.01"), ("0.01<=mu<0.1", "0.01 ≤ μ < 0.1"), ("mu>=0.1", "μ ≥ 0.1")):
        parts += [f"## Tokens with {name}: g/A against the on-policy weight 1", _md_table(*rare_table(summary, mu))]
    if summary["zero_gradient_steps"]:
        parts.append("Zero gradient (no direction; those steps are left out of its cosines): " + ", ".join(
            f"`{label}` at {n} of {summary['steps']} step(s)" for label, n in summary["zero_gradient_steps"].items())
            + ".")
    for check in summary["own_check"]:
        parts.append(f"Check: the run's own objective `{check['objective']}` recomputed over {check['steps']} "
                     f"step(s) differs from the weights its trainer applied by at most {check['max_abs_diff']:.2e} "
                     f"(largest weight {check['max_abs_weight']:.2e}).")
    parts += ["![cosine](cosine.png)", "![tokens](tokens.png)",
              f"![tokens at step {scatter_step}, where the objectives disagree most](tokens_step.png)"]
    return "\n\n".join(parts) + "\n"
