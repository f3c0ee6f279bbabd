"""RunConfig: everything one training run needs, validated at the boundary.

Every field's help text is its ``description`` here and nowhere else: this module is the reference for a
run config's fields (the README's example points to it). No command prints the descriptions; a bad value's
error names the field and what was expected (``format_validation_error``).
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


# The sampler's top-K when a top-K objective leaves rollout_top_k unset.
DEFAULT_TOP_K = 8
# The sampler's precisions (rollout.ROLLOUT_DTYPES gives each its compute dtype).
ROLLOUT_PRECISIONS = ("fp32", "bf16", "fp16", "fp8", "int8", "int4")


class ConfigError(ValueError):
    """Bad user input: the message names the field or file and what was expected."""


# The machine failed, not the input nor the configuration: a full disk, an unwritable place, an I/O error.
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})


def machine_error(err: BaseException) -> OSError | None:
    """The OSError of a full disk or unwritable place behind ``err`` (itself or what caused it), else None."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in MACHINE_ERRNOS:
            return err
        err = err.__cause__ or err.__context__
    return None


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, gt=0, description="LoRA rank")
    alpha: int = Field(16, gt=0, description="LoRA scaling α")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout")
    target_modules: list[str] | str = Field("all-linear", description="modules that get adapters (peft syntax)")


class TrackingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wandb_mode: Literal["auto", "offline", "online", "disabled"] = Field(
        "auto", description="auto = online when logged in to W&B, offline otherwise"
    )
    wandb_project: str = Field("workbench", description="W&B project")
    group: str | None = Field(None, description="W&B group (a sweep sets it to the sweep name)")
    histogram_every: int = Field(5, gt=0, description="log gradient-weight and shift histograms every N steps")
    histogram_bins: int = Field(41, ge=5, description="bins per histogram")
    keep_batches_every: int | None = Field(
        None, gt=0, description="keep the batch and the trainable weights of every N-th optimizer step under "
                                "batches/step-<k>/ for `workbench replay` (None = off)")
    keep_batches_max_mb: float = Field(
        32.0, gt=0, allow_inf_nan=False, description="size cap of one kept step's weights in MB (tiny policy 1.6, "
                                                     "SmolLM2-135M's LoRA r=16 adapter 19.6): above it the weights "
                                                     "are skipped with a warning, the batch is kept")


class RunConfig(BaseModel):
    """One training run. Loadable from YAML (:meth:`from_yaml`); unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # What is trained, on what.
    model: str = Field("tiny", description="'tiny' (built-in warm-started policy), a hub id, or a local folder")
    lora: LoraSettings | None = Field(None, description="train a LoRA adapter through peft instead of all weights")
    task: str = Field(
        "noisy_arithmetic",
        description="built-in task (noisy_arithmetic, arithmetic, dataset: your own data) or an import path "
                    "'pkg.module:factory'"
    )
    task_params: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the task (dataset: path, prompt, answer, reward, "
                                          "reward_params, ...: workbench/tasks/dataset.py)"
    )

    # The objective under study.
    objective: str = Field(
        "grpo", description="registered objective, plugin 'pkg.module:fn', or TRL's own "
                            "'trl:dapo|cispo|sapo|gspo|vespo|luspo'"
    )
    objective_params: dict[str, Any] = Field(default_factory=dict, description="parameters of the objective")
    aggregation: Literal["token_mean", "sequence_mean", "fixed_horizon"] = Field(
        "token_mean",
        description="token_mean over the batch (DAPO), sequence_mean (GRPO), fixed_horizon (Dr. GRPO: / B·L_max)",
    )
    correction: str | dict[str, Any] | None = Field(
        None, description="mismatch correction, a detached weight on the loss from r_old = π_old/μ: a name (tis, mis, "
                          "opsm, rs), a preset (tis@verl_fp8) or {name: tis, level: token, high: 2.0}; the objective "
                          "then reads π against π_old (decoupled). None = off: the objective reads π/μ (bypass)"
    )

    # Where μ comes from.
    rollout_precision: Literal[ROLLOUT_PRECISIONS] = Field(
        "fp32", description="precision of the sampling copy of the policy (fp8 simulated by a weight round-trip; "
                            "int8/int4: weight-only GGUF Q8_0/Q4_1 blocks of 32, fp32 compute)"
    )
    rollout_lag: int = Field(
        0, ge=0, description="asynchronous staleness: the batch trained at optimizer step t is sampled by the "
                             "weights of step t − k (0 = the current weights)"
    )
    sampling_top_p: float = Field(1.0, gt=0, le=1, description="nucleus truncation of the sampler (1 = off)")
    sampling_top_k: int = Field(0, ge=0, description="top-k truncation of the sampler (0 = off; not rollout_top_k, "
                                                     "which is how many log-probs the sampler returns)")
    sampling_min_p: float = Field(0.0, ge=0, lt=1, description="min-p truncation of the sampler (0 = off)")
    behaviour_logprobs: Literal["processed", "raw"] = Field(
        "processed", description="μ under truncated sampling: processed = the truncated, renormalised sampling "
                                 "distribution (vLLM's default); raw = the model's full softmax at the temperature"
    )
    train_precision: Literal["fp32", "bf16"] = Field("fp32", description="fp32 or bf16 autocast for training")
    num_iterations: int = Field(1, ge=1, description="updates per generated batch (μ stays frozen across them)")
    steps_per_generation: int | None = Field(
        None, ge=1, description="optimizer steps served by one generation batch (None = gradient_accumulation_steps)"
    )
    rollout_top_k: int | None = Field(
        None, ge=0, description="the sampler also returns its top-K log-probs per position for the top-K objectives "
                                "(dppo_topk_*); None = 8 for those, 0 (off, nothing paid) for the others"
    )

    # Optimisation.
    learning_rate: float = Field(5e-4, gt=0, allow_inf_nan=False, description="AdamW learning rate")
    beta: float = Field(0.0, ge=0, allow_inf_nan=False,
                        description="KL coefficient against the reference policy (0 = no reference)")
    prompts_per_step: int = Field(8, ge=1, description="distinct prompts per optimizer step")
    num_generations: int = Field(8, ge=2, description="group size G: completions per prompt")
    gradient_accumulation_steps: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_steps: int = Field(400, ge=1, description="optimizer steps")
    max_completion_length: int = Field(8, ge=1, description="tokens sampled per completion at most")
    temperature: float = Field(1.0, gt=0, allow_inf_nan=False,
                               description="sampling temperature (training and sampled eval)")
    max_grad_norm: float = Field(1.0, gt=0, allow_inf_nan=False, description="gradient clipping norm")

    # Evaluation.
    eval_every: int = Field(50, ge=1, description="evaluate held-out accuracy every N steps (and at the end)")
    eval_prompts: int = Field(80, ge=1, description="held-out prompts per evaluation (the built-in split has 80)")
    eval_samples: int = Field(8, ge=1, description="k samples per held-out prompt; accuracy is their mean")

    # At most 2**32 - 1: numpy's global seed (set with the others before training) takes nothing larger.
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of data order, sampling and initialisation")
    output_dir: Path = Field(Path("runs"), description="folder under which the run's folder is created")
    name: str | None = Field(None, description="run folder name (default: objective-seed-timestamp)")
    tracking: TrackingSettings = Field(default_factory=TrackingSettings, description="W&B and histogram settings")

    @field_validator("name")
    @classmethod
    def _one_folder(cls, v: str | None) -> str | None:
        # The run folder is output_dir/name: a path would write the run elsewhere (../../escape, /tmp/x).
        if v is not None and (not v.strip() or v in (".", "..") or "/" in v or "\\" in v or "\0" in v):
            raise ValueError("must be one folder name, without '/' and not '.' or '..'")
        return v

    @field_validator("num_generations")
    @classmethod
    def _group(cls, v: int) -> int:
        if v < 2:
            raise ValueError("group size must be at least 2 for group-relative advantages")
        return v

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        from .objectives import get_objective, get_spec

        try:
            if get_spec(self.objective).kind == "trl":
                return self  # GRPOConfig's parameters: TRL validates them (runner.check_trl_arguments)
            objective = get_objective(self.objective, **self.objective_params)
        except ValueError as err:
            field = "objective_params" if "parameter" in str(err) else "objective"
            raise ValueError(f"{field}: {err}") from None
        if objective.spec.uses_top_k and self.correction is not None:
            raise ValueError(f"correction: not with the top-K objective {self.objective!r} (its divergence reads "
                             "the sampler's own top-K μ, which a decoupled objective would not see)")
        if objective.spec.uses_top_k and self.rollout_top_k == 0:
            raise ValueError(f"rollout_top_k: objective {self.objective!r} needs the sampler's top-K log-probs; "
                             f"set rollout_top_k to K > 0 (default {DEFAULT_TOP_K})")
        return self

    @model_validator(mode="after")
    def _check_correction(self) -> RunConfig:
        from .objectives import correction_from_setting

        try:
            correction_from_setting(self.correction)
        except ValueError as err:
            raise ValueError(f"correction: {err}") from None
        return self

    @property
    def top_logprobs(self) -> int:
        """K, how many of the sampler's most likely tokens the rollout engine returns with their log μ (the top-K
        objectives' input; not truncated sampling's ``sampling_top_k``): ``rollout_top_k``, or its default for the
        objective when None."""
        if self.rollout_top_k is not None:
            return self.rollout_top_k
        from .objectives import get_spec

        return DEFAULT_TOP_K if get_spec(self.objective).uses_top_k else 0

    # ---- loading -------------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> RunConfig:
        """Load a YAML file, apply ``key=value`` overrides (dotted keys reach nested fields)."""
        data = load_yaml_mapping(path)
        for item in overrides or []:
            apply_override(data, item)
        return cls.parse(data, source=str(path))

    @classmethod
    def parse(cls, data: dict[str, Any], source: str = "config") -> RunConfig:
        """Validate a mapping; the error names the first bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(f"{source}: {format_validation_error(err)}") from None
        except ValueError as err:  # raised by nested validators such as the objective registry
            raise ConfigError(f"{source}: {err}") from None


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping or raise a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file (a byte that is not UTF-8 at offset {err.start})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config fields, got {type(data).__name__}")
    return data


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``a.b=value`` override; the value is parsed as YAML (numbers, lists, booleans)."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected key=value")
    target = data
    *parents, leaf = key.split(".")
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"--set {item!r}: {part!r} is not a mapping")
    target[leaf] = yaml.safe_load(raw)


def format_validation_error(err: ValidationError) -> str:
    """'field.sub: message (got value)' for the first error of a pydantic ValidationError."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"unknown field {loc!r}"
    if not loc:  # a whole-config check, whose message names the field itself
        return msg
    got = first.get("input")
    return f"{loc}: {msg}" + ("" if isinstance(got, dict) else f" (got {got!r})")
