"""Mismatch corrections: a detached per-token weight on the loss, an axis beside the objective (like aggregation).

Three policies: μ the sampler (other numerics, older weights under lag), π_old the proximal policy (the training
weights when the batch's updates begin) and π (the weights being updated). A correction reads

    w = π_old / μ                               the sampler's mismatch (plus the batch's staleness)

and returns a weight c (shape (B, T) or (B, 1), detached) that multiplies the per-token loss. At a batch's only
update π_old = sg(π). Levels of the ratio, as TRL 1.16 and verl compute them:

    token       w_t = exp(log π_old_t − log μ_t)
    sequence    w_i = exp(Σ_t (log π_old_t − log μ_t))          (the product of the token ratios)
    geometric   w_i = exp(mean_t (log π_old_t − log μ_t))       (their geometric mean)

    tis   c = clamp(w, low, high)                               truncated IS (TRL *_truncate, verl rollout_is)
    mis   c = w·1[low ≤ w ≤ high]                               masked IS (TRL *_mask, IcePop's M(k))
    opsm  c_i = 0 iff A_i < 0 and mean_t (log μ_t − log sg(π_t)) > δ, else 1    (DeepSeek-V3.2 Eq. 9, TRL)
    rs    c = 1[low ≤ exp(k1) ≤ high] for k1, 1[k ≤ high] for k2, k3, per token or per sequence (verl rollout_rs)

A bound of None is unbounded. Padding contributes a log-ratio of 0 (TRL: the difference is multiplied by the
mask), NaN log-probabilities (tokens a sampler could not score) a difference of 0. Log-ratios are clamped at
±20 (verl's SAFETY_BOUND) so that exp never overflows.
Public API: ``get_correction(name, **params)(logp, old_logp, behaviour_logp, advantages, mask)`` →
:class:`CorrectionOutput` (``weight``, ``metrics``); ``"family@preset"`` names a recipe's own setting.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .common import LOG_RATIO_CLAMP, proximal_logp, sequence_mean
from .registry import bind_params, parameter_rows, preset_params

Level = Literal["token", "sequence", "geometric"]

# The metric names every correction logs (DESIGN.md "Diagnostics"); the histogram is correction/log_weight.
METRIC_NAMES = ("correction/weight_mean", "correction/frac_truncated", "correction/frac_masked",
                "correction/raw_ratio_min", "correction/raw_ratio_mean", "correction/raw_ratio_max")
HISTOGRAM = "correction/log_weight"


class CorrectionParams(BaseModel):
    """Base for a correction's parameters: frozen, unknown names refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Bounded(CorrectionParams):
    low: float | None = Field(None, ge=0, description="lower bound on the ratio; None = unbounded")
    high: float | None = Field(2.0, gt=0, description="upper bound on the ratio; None = unbounded")

    @model_validator(mode="after")
    def _ordered(self) -> _Bounded:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class TISParams(_Bounded):
    level: Level = Field("token", description="token, sequence (Σ log-ratios) or geometric (their mean)")
    high: float | None = Field(2.0, gt=0, description="truncation C_max (verl's token TIS: 2.0); None = none")


class MISParams(_Bounded):
    level: Level = Field("sequence", description="token, sequence (Σ log-ratios) or geometric (their mean)")
    high: float | None = Field(3.0, gt=0, description="mask above C_max (TRL's default sequence_mask: 3.0)")


class OPSMParams(CorrectionParams):
    threshold: float = Field(0.5, ge=0, description="δ on the sequence mean of log μ − log π (TRL's example 0.5)")


class RSParams(_Bounded):
    metric: Literal["k1", "k2", "k3"] = Field("k1", description="k1 = −log w, k2 = ½(log w)², "
                                                                "k3 = w − 1 − log w")
    agg: Literal["token", "seq_sum", "seq_mean", "seq_max"] = Field("seq_mean", description="per token, or the "
                                                                    "sequence's sum, mean or max (verl)")
    low: float | None = Field(None, ge=0, description="k1: lower bound on exp(k1) (None = 1/high, verl); k2/k3: none")
    high: float | None = Field(1.001, gt=0, description="k1: upper bound on exp(k1); k2/k3: upper bound on k")

    @model_validator(mode="after")
    def _metric_bounds(self) -> RSParams:
        if self.high is None:
            raise ValueError("high: rejection sampling needs an upper bound")
        if self.metric != "k1" and self.low is not None:
            raise ValueError(f"low: {self.metric} is a divergence (≥ 0) with an upper bound only; set low to null")
        if self.metric == "k1" and self.agg == "seq_max":
            raise ValueError("agg: seq_max takes k2 or k3 (verl has no seq_max_k1)")
        return self


@dataclass
class CorrectionOutput:
    """weight: (B, T) or (B, 1), detached, multiplies the per-token loss. metrics: METRIC_NAMES over valid tokens."""

    weight: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    mask: torch.Tensor | None = None  # the valid tokens, for log_weight

    @property
    def log_weight(self) -> torch.Tensor:
        """log c at every valid token whose weight is not 0 (the ``correction/log_weight`` histogram), 1-D."""
        weight = self.weight if self.mask is None else self.weight.expand(self.mask.shape)[self.mask > 0]
        return weight[weight > 0].log()


CorrectionFn = Callable[..., CorrectionOutput]


@dataclass(frozen=True)
class CorrectionSpec:
    name: str
    fn: CorrectionFn
    params_model: type[CorrectionParams]
    paper: str
    summary: str
    source: str = ""  # for a preset: where its numbers come from

    def parameters(self) -> list[tuple[str, Any, str]]:
        return parameter_rows(self.params_model)


@dataclass(frozen=True)
class Correction:
    """A correction bound to validated parameters: ``(logp, old_logp, behaviour_logp, advantages, mask)`` → output."""

    spec: CorrectionSpec
    params: CorrectionParams

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        """Short name for reports: ``tis(token, 2.0)``, ``mis(sequence, 0.5, 2.0)``, ``opsm(0.5)``."""
        return correction_label(self.spec.name.partition("@")[0], self.params.model_dump())

    def __call__(self, logp: torch.Tensor, old_logp: torch.Tensor | None, behaviour_logp: torch.Tensor,
                 advantages: torch.Tensor, mask: torch.Tensor) -> CorrectionOutput:
        """logp, old_logp (None: sg(logp)), behaviour_logp, mask: (B, T); advantages (B,) or (B, T)."""
        if logp.dim() != 2 or behaviour_logp.shape != logp.shape or mask.shape != logp.shape:
            raise ValueError(f"logp, behaviour_logp and mask must share a (batch, tokens) shape; got "
                             f"{tuple(logp.shape)}, {tuple(behaviour_logp.shape)}, {tuple(mask.shape)}")
        if old_logp is not None and old_logp.shape != logp.shape:
            raise ValueError(f"old_logp must have the shape of logp {tuple(logp.shape)}, got {tuple(old_logp.shape)}")
        if advantages.shape not in (logp.shape[:1], logp.shape):
            raise ValueError(f"advantages must be (batch,) or (batch, tokens); got {tuple(advantages.shape)}")
        dtype = torch.float32 if logp.dtype in (torch.float16, torch.bfloat16) else logp.dtype
        with torch.no_grad():
            logp = logp.detach().to(dtype)
            old = proximal_logp(logp, old_logp).detach().to(dtype)
            adv = advantages.detach().to(dtype)
            adv = adv.unsqueeze(1) if adv.dim() == 1 else adv
            return self.spec.fn(logp, old, behaviour_logp.detach().to(dtype), adv, mask.to(dtype), self.params)


def correction_label(family: str, params: dict[str, Any]) -> str:
    """``tis(token, 2.0)``: the family with its level and bounds (or threshold), for arm labels."""
    def num(v: Any) -> str:
        return "inf" if v is None else str(v)

    bounds = ([num(params["low"])] if params.get("low") is not None else []) + [num(params.get("high"))]
    if family in ("tis", "mis"):
        return f"{family}({', '.join([params.get('level', 'token'), *bounds])})"
    if family == "opsm":
        return f"opsm({num(params.get('threshold'))})"
    if family == "rs":
        return f"rs({params.get('agg')} {params.get('metric')}, {', '.join(bounds)})"
    return family if not params else f"{family}({', '.join(f'{k}={num(v)}' for k, v in params.items())})"


# ---- shared steps --------------------------------------------------------------------------------------------


def mismatch_log_ratio(old: torch.Tensor, behaviour: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log π_old − log μ per token, 0 at padding and where μ is NaN (TRL's convention)."""
    return torch.nan_to_num((old - behaviour) * mask, nan=0.0)


def level_log_ratio(log_w: torch.Tensor, mask: torch.Tensor, level: str) -> torch.Tensor:
    """The log-ratio at ``level``: per token (B, T), or per sequence (B, 1) as a sum or a mean; clamped ±20."""
    if level == "sequence":
        log_w = log_w.sum(-1, keepdim=True)
    elif level == "geometric":
        log_w = sequence_mean(log_w, mask)
    return log_w.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)


def correction_metrics(weight: torch.Tensor, raw_ratio: torch.Tensor, truncated: torch.Tensor,
                       masked: torch.Tensor, mask: torch.Tensor) -> CorrectionOutput:
    """Package ``weight`` with METRIC_NAMES over valid tokens (sequence-level tensors count once per token).

    Masked sums, not boolean indexing: this runs at every step, beside the objective.
    """
    n = float(mask.sum())
    if n == 0:
        zeros = {"correction/weight_mean": 0.0, "correction/frac_truncated": 0.0, "correction/frac_masked": 0.0}
        return CorrectionOutput(weight, zeros | {f"correction/raw_ratio_{s}": 1.0 for s in ("min", "mean", "max")},
                                mask)

    def mean(x: torch.Tensor) -> float:
        counts = mask if x.shape == mask.shape else mask.sum(-1, keepdim=True)  # a sequence's value counts per token
        return float((x * counts).sum() / n)

    valid = (mask > 0) if raw_ratio.shape == mask.shape else (mask.sum(-1, keepdim=True) > 0)
    metrics = {
        "correction/weight_mean": mean(weight),
        "correction/frac_truncated": mean(truncated.to(mask.dtype)),
        "correction/frac_masked": mean(masked.to(mask.dtype)),
        "correction/raw_ratio_min": float(raw_ratio.masked_fill(~valid, math.inf).min()),
        "correction/raw_ratio_mean": mean(raw_ratio),
        "correction/raw_ratio_max": float(raw_ratio.masked_fill(~valid, -math.inf).max()),
    }
    return CorrectionOutput(weight, metrics, mask)


# ---- the families ----------------------------------------------------------------------------------------------

_REGISTRY: dict[str, CorrectionSpec] = {}
_PRESETS: dict[str, CorrectionSpec] = {}


def register_correction(name: str, params: type[CorrectionParams],
                        paper: str) -> Callable[[CorrectionFn], CorrectionFn]:
    """Register a correction family ``fn(logp, old_logp, behaviour_logp, advantages (B,1)|(B,T), mask, params)``."""

    def decorator(fn: CorrectionFn) -> CorrectionFn:
        if name in _REGISTRY:
            raise ValueError(f"correction {name!r} is already registered")
        summary = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ")
        _REGISTRY[name] = CorrectionSpec(name, fn, params, paper, summary)
        return fn

    return decorator


@register_correction("tis", TISParams,
                     paper="Yao et al., fengyao.notion.site/off-policy-rl; TRL 1.16 *_truncate; verl rollout_is")
def tis(logp, old_logp, behaviour_logp, advantages, mask, params: TISParams) -> CorrectionOutput:
    """Truncated importance sampling: c = clamp(π_old/μ, low, high) at the token, sequence or geometric level."""
    ratio = level_log_ratio(mismatch_log_ratio(old_logp, behaviour_logp, mask), mask, params.level).exp()
    unbounded = params.low is None and params.high is None  # plain IS (torch.clamp refuses two Nones)
    weight = ratio.clone() if unbounded else ratio.clamp(min=params.low, max=params.high)
    return correction_metrics(weight, ratio, weight != ratio, torch.zeros_like(ratio, dtype=torch.bool), mask)


@register_correction("mis", MISParams, paper="TRL 1.16 token/sequence_mask; IcePop, arXiv 2510.18855 Eq. 2")
def mis(logp, old_logp, behaviour_logp, advantages, mask, params: MISParams) -> CorrectionOutput:
    """Masked importance sampling: c = π_old/μ inside [low, high] (bounds kept), 0 outside."""
    ratio = level_log_ratio(mismatch_log_ratio(old_logp, behaviour_logp, mask), mask, params.level).exp()
    low = -math.inf if params.low is None else params.low
    high = math.inf if params.high is None else params.high
    outside = (ratio < low) | (ratio > high)
    weight = ratio.masked_fill(outside, 0.0)
    return correction_metrics(weight, ratio, torch.zeros_like(outside), outside, mask)


@register_correction("opsm", OPSMParams, paper="DeepSeek-V3.2, arXiv 2512.02556 Eq. 9; TRL get_off_policy_mask")
def opsm(logp, old_logp, behaviour_logp, advantages, mask, params: OPSMParams) -> CorrectionOutput:
    """Off-policy sequence mask: drop a sequence with A < 0 whose mean log μ − log sg(π) exceeds δ; else 1.

    Reads π itself (detached), not π_old, as DeepSeek-V3.2 and TRL do: the divergence covers both the sampler's
    mismatch and the drift of the batch's earlier updates. Shape (B, 1) for one advantage per sequence.
    """
    kl = torch.nan_to_num(behaviour_logp - logp, nan=0.0)
    mean_kl = sequence_mean(kl, mask)
    dropped = (advantages < 0) & (mean_kl > params.threshold)
    weight = (~dropped).to(logp.dtype)
    ratio = (-mean_kl).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()  # the sequence's geometric π/μ
    return correction_metrics(weight, ratio, torch.zeros_like(dropped), dropped, mask)


@register_correction("rs", RSParams, paper="verl rollout_corr_helper.compute_rollout_rejection_mask")
def rs(logp, old_logp, behaviour_logp, advantages, mask, params: RSParams) -> CorrectionOutput:
    """verl's rejection sampling: mask tokens or sequences whose k1/k2/k3 divergence (π_old vs μ) is out of bounds.

    k1 = −log w (bounds on exp(k1) = μ/π_old, low defaulting to 1/high), k2 = ½(log w)², k3 = w − 1 − log w
    (upper bound only); aggregated per token or as the sequence's sum, mean or max over valid tokens.
    """
    log_w = mismatch_log_ratio(old_logp, behaviour_logp, mask).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    stat = {"k1": -log_w, "k2": 0.5 * log_w ** 2, "k3": log_w.exp() - 1 - log_w}[params.metric]
    if params.agg == "seq_sum":
        stat = (stat * mask).sum(-1, keepdim=True)
    elif params.agg == "seq_mean":
        stat = sequence_mean(stat, mask)
    elif params.agg == "seq_max":
        stat = stat.masked_fill(mask == 0, -math.inf).amax(-1, keepdim=True)
        stat = stat.masked_fill(torch.isinf(stat), 0.0)  # a sequence with no valid token: 0, as verl
    if params.metric == "k1":
        low = 1.0 / params.high if params.low is None else params.low
        rejected = (stat < math.log(low) if low > 0 else torch.zeros_like(stat, dtype=torch.bool)) | (
            stat > math.log(params.high))
    else:
        rejected = stat > params.high
    weight = (~rejected).to(logp.dtype)
    return correction_metrics(weight, log_w.exp(), torch.zeros_like(rejected), rejected, mask)


# ---- registry ----------------------------------------------------------------------------------------------


def register_correction_preset(name: str, source: str, **params: Any) -> CorrectionSpec:
    """Register ``"family@preset"``: the family with ``params`` as its defaults, citing ``source``."""
    family, _, preset = name.partition("@")
    if not preset or family not in _REGISTRY:
        raise ValueError(f"correction preset {name!r}: expected 'family@preset' with a registered family")
    if name in _PRESETS:
        raise ValueError(f"correction preset {name!r} is already registered")
    if not source:
        raise ValueError(f"correction preset {name!r}: name its source (paper section or recipe file)")
    spec = _REGISTRY[family]
    derived = preset_params(f"correction preset {name!r}", family, preset, spec.params_model, params)
    _PRESETS[name] = replace(spec, name=name, params_model=derived, source=source)
    return _PRESETS[name]


def available_corrections() -> list[str]:
    """Registered correction families, sorted (presets: :func:`available_correction_presets`)."""
    return sorted(_REGISTRY)


def available_correction_presets() -> list[str]:
    return sorted(_PRESETS)


def get_correction_spec(name: str) -> CorrectionSpec:
    if name in _PRESETS:
        return _PRESETS[name]
    if name not in _REGISTRY:
        raise ValueError(f"unknown correction {name!r}; expected one of {', '.join(available_corrections())} "
                         f"or a preset ({', '.join(available_correction_presets())})")
    return _REGISTRY[name]


def get_correction(name: str, **params: Any) -> Correction:
    """Bind a correction (family or ``family@preset``) to validated parameters; errors name the parameter."""
    spec = get_correction_spec(name)
    bound = bind_params(f"correction {spec.name!r}", spec.params_model, params)
    return Correction(spec, bound)


# ---- presets: recipes' own settings, each opened at its source --------------------------------------------------

register_correction_preset(
    "mis@trl", "TRL 1.16 GRPOConfig defaults: vllm_importance_sampling_mode='sequence_mask', "
    "vllm_importance_sampling_clip_max=3.0, clip_min None (trl/trainer/grpo_config.py, field help and defaults)",
    level="sequence", low=None, high=3.0)
register_correction_preset(
    "tis@verl_fp8", "verl (b178a3c) docs/advance/fp8.md (FP8 rollout recipe: 'Token-level TIS, C=2', matches BF16); "
    "RolloutCorrectionConfig.decoupled_token_is(threshold=2.0), verl/trainer/config/algorithm.py",
    level="token", low=None, high=2.0)
register_correction_preset(
    "mis@verl_seq", "verl (b178a3c) Seq-MIS: RolloutCorrectionConfig.decoupled_seq_is_rs (rollout_is='sequence' "
    "truncated at 2.0, rollout_rs='seq_sum_k1' with '0.5_2.0'), verl/trainer/config/algorithm.py; = sequence ratio "
    "kept in [0.5, 2.0]", level="sequence", low=0.5, high=2.0)
register_correction_preset(
    "rs@verl_geo", "verl (b178a3c) Geo-RS: RolloutCorrectionConfig.decoupled_geo_rs (rollout_rs='seq_mean_k1', "
    "'0.999_1.001'), verl/trainer/config/algorithm.py; verl/trainer/ppo/rollout_corr_helper.py",
    metric="k1", agg="seq_mean", low=0.999, high=1.001)
register_correction_preset(
    "mis@icepop", "IcePop, Ring-1T (arXiv 2510.18855) §2.3.2 Eq. 1-2 (M(k) = k inside [α, β], token level) and "
    "§2.3.4 training recipe: α = 0.5, β = 5", level="token", low=0.5, high=5.0)
register_correction_preset(
    "opsm@trl", "DeepSeek-V3.2 (arXiv 2512.02556) Eq. 9 names δ without a value; TRL 1.16 GRPOConfig "
    "off_policy_mask_threshold help: 'a positive value (e.g., 0.5)'", threshold=0.5)


def correction_from_setting(setting: str | dict[str, Any] | None) -> Correction | None:
    """A run config's ``correction:`` value: None (off), a name or preset, or ``{name: tis, level: token, ...}``."""
    if setting is None:
        return None
    if isinstance(setting, str):
        return get_correction(setting)
    if isinstance(setting, dict):
        params = dict(setting)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise ValueError("a mapping needs its name, e.g. {name: tis, level: token, high: 2.0}")
        return get_correction(name, **params)
    raise ValueError(f"expected a name, a preset or a mapping with a name, got {type(setting).__name__}")
