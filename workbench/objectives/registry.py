"""The objective registry: names → (parameter structure, per-token loss function).

An objective family is a pure function of tensors

    fn(logp, behaviour_logp, advantages, mask, params, generator=None) -> ObjectiveOutput

registered with :func:`register_objective` together with a pydantic model holding its parameters
(defaults and help text in one place: CLI help, ``objectives list`` and report captions read them).
A family registered with ``uses_old_logp=True`` also receives ``old_logp=`` (log π_old, the policy at the
start of the batch's updates, detached): its trust region can be measured against π_old.
:func:`get_objective` validates parameters at the boundary and returns a bound :class:`Objective`.
Plugins are loaded by import path, ``"my_pkg.losses:my_objective"``. A preset, ``"family@preset"``
(:func:`register_preset`), is the family with the defaults of a paper's or recipe's own setting:
``get_spec``/``get_objective`` resolve it, so a run, a sweep or a report may name one; given
parameters still override it. TRL's own losses, ``"trl:<loss>"``, are specs of another kind (``kind == "trl"``):
TRL computes them inside its trainer, selected by the GRPOConfig fields ``trl_args``; this module alone reads
the prefix.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol

import torch
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo

from .common import proximal_logp


class ObjectiveParams(BaseModel):
    """Base for an objective's parameters: frozen, unknown names refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(ObjectiveParams):
    """The objective has no parameters."""


@dataclass
class ObjectiveOutput:
    """What every objective returns.

    per_token_loss: (B, T), zero where mask is 0, differentiable w.r.t. ``logp``; loss = −J_t.
    metrics: the family's own scalar diagnostics over valid tokens (the ``frac/*`` that apply to it); the
    shift every objective shares (``tv/*``, ``ratio/mean``) is measured once, by the trainer.
    """

    per_token_loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


class ObjectiveFn(Protocol):
    def __call__(
        self,
        logp: torch.Tensor,
        behaviour_logp: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        params: Any,
        generator: torch.Generator | None = None,
    ) -> ObjectiveOutput: ...


@dataclass(frozen=True)
class ObjectiveSpec:
    """A registered family: its function, parameter model and the paper it comes from.

    ``batch_level``: a token's loss depends on the other tokens of the batch (Clip-Cov and KL-Cov select
    tokens by batch statistics), so its gradient weight is not a function of (π, μ, A) alone.
    ``uses_old_logp``: the function takes ``old_logp=`` (log π_old) besides the common inputs.
    """

    name: str
    fn: ObjectiveFn
    params_model: type[ObjectiveParams]
    paper: str
    summary: str
    batch_level: bool = False
    uses_old_logp: bool = False
    uses_top_k: bool = False  # takes top_k= (log π, log μ) at the sampler's top-K tokens and the sampled one
    source: str = ""  # for a preset: where its settings come from (paper section or recipe file)
    kind: str = "workbench"  # "trl": TRL's own loss, computed inside its trainer (``fn`` is never called)
    trl_args: dict[str, Any] = field(default_factory=dict)  # the GRPOConfig fields that select a "trl" loss

    def parameters(self) -> list[tuple[str, Any, str]]:
        return parameter_rows(self.params_model)


@dataclass(frozen=True)
class Objective:
    """An objective bound to validated parameters: call it like the family function minus ``params``."""

    spec: ObjectiveSpec
    params: ObjectiveParams

    @property
    def name(self) -> str:
        return self.spec.name

    def __call__(
        self,
        logp: torch.Tensor,
        behaviour_logp: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        generator: torch.Generator | None = None,
        old_logp: torch.Tensor | None = None,
        top_k: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> ObjectiveOutput:
        """Shapes: logp, behaviour_logp, mask, old_logp (B, T); advantages (B,) or (B, T).

        ``old_logp`` reaches only families that declare ``uses_old_logp``; None there means π_old = π
        (the first update of a batch). Half-precision inputs are promoted to float32: the precision under
        study is the model's forward (μ from a bf16/fp16 sampler), not the loss arithmetic, where
        exp(log r) overflows fp16 at r > 65504.
        """
        _check_shapes(logp, behaviour_logp, advantages, mask)
        logp, behaviour_logp, advantages = (_promote(t) for t in (logp, behaviour_logp, advantages))
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1)
        advantages = advantages.expand_as(logp)
        extra: dict[str, torch.Tensor] = {}
        if self.spec.uses_old_logp:
            if old_logp is not None and old_logp.shape != logp.shape:
                raise ValueError(f"old_logp must have the shape of logp {tuple(logp.shape)}, "
                                 f"got {tuple(old_logp.shape)}")
            extra["old_logp"] = _promote(proximal_logp(logp, old_logp)).detach()
        if self.spec.uses_top_k:
            extra["top_k"] = top_k
        return self.spec.fn(logp, behaviour_logp, advantages, mask.to(logp.dtype), self.params, generator=generator,
                            **extra)


def _promote(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _check_shapes(logp: torch.Tensor, behaviour_logp: torch.Tensor, advantages: torch.Tensor,
                  mask: torch.Tensor) -> None:
    if logp.dim() != 2:
        raise ValueError(f"logp must be (batch, tokens), got shape {tuple(logp.shape)}")
    for name, t in (("behaviour_logp", behaviour_logp), ("mask", mask)):
        if t.shape != logp.shape:
            raise ValueError(f"{name} must have the shape of logp {tuple(logp.shape)}, got {tuple(t.shape)}")
    if advantages.shape not in (logp.shape[:1], logp.shape):
        raise ValueError(f"advantages must be (batch,) or (batch, tokens) = {tuple(logp.shape)}, "
                         f"got {tuple(advantages.shape)}")


_REGISTRY: dict[str, ObjectiveSpec] = {}
_PRESETS: dict[str, ObjectiveSpec] = {}

TRL_PREFIX = "trl:"
# TRL's own losses kept as baselines: objective "trl:<loss>" → the GRPOConfig fields that select it. Their
# parameters are GRPOConfig's, validated by TRL (runner.check_trl_arguments).
TRL_LOSSES: dict[str, dict[str, Any]] = {
    "grpo": {"loss_type": "grpo"},
    "dapo": {"loss_type": "dapo"},
    "cispo": {"loss_type": "cispo"},
    "sapo": {"loss_type": "sapo"},
    "gspo": {"loss_type": "grpo", "importance_sampling_level": "sequence"},
    "vespo": {"loss_type": "vespo"},
    "luspo": {"loss_type": "luspo", "importance_sampling_level": "sequence"},
}


def register_objective(
    name: str, params: type[ObjectiveParams] = NoParams, paper: str = "", batch_level: bool = False,
    uses_old_logp: bool = False, uses_top_k: bool = False,
) -> Callable[[ObjectiveFn], ObjectiveFn]:
    """Register an objective family under ``name``; a name already taken is refused, never overwritten."""

    def decorator(fn: ObjectiveFn) -> ObjectiveFn:
        if name in _REGISTRY:
            raise ValueError(f"objective {name!r} is already registered (by {_REGISTRY[name].fn.__module__})")
        _check_signature(name, fn, params, uses_old_logp, uses_top_k)
        summary = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ")
        _REGISTRY[name] = ObjectiveSpec(name, fn, params, paper, summary, batch_level, uses_old_logp, uses_top_k)
        return fn

    return decorator


def _check_signature(name: str, fn: Any, params: Any, uses_old_logp: bool = False, uses_top_k: bool = False) -> None:
    """Fail at registration/load time, not inside training, when a plugin breaks the contract."""
    if not callable(fn):
        raise ValueError(f"objective {name!r}: {fn!r} is not callable")
    if not (isinstance(params, type) and issubclass(params, ObjectiveParams)):
        raise ValueError(f"objective {name!r}: params must be a subclass of ObjectiveParams, got {params!r}")
    extra = {k: None for k, used in (("old_logp", uses_old_logp), ("top_k", uses_top_k)) if used}
    try:
        sig = inspect.signature(fn)
        sig.bind(None, None, None, None, None, generator=None, **extra)
    except (TypeError, ValueError) as err:
        old = "".join(f", {k}" for k in extra)
        raise ValueError(
            f"objective {name!r}: expected fn(logp, behaviour_logp, advantages, mask, params, generator=None{old}), "
            f"got {fn.__name__}{inspect.signature(fn) if callable(fn) else ''} ({err})"
        ) from None


def register_preset(name: str, source: str, **params: Any) -> ObjectiveSpec:
    """Register ``"family@preset"``: the family with ``params`` as its defaults, citing ``source``."""
    family, _, preset = name.partition("@")
    if not preset or family not in _REGISTRY:
        raise ValueError(f"preset {name!r}: expected 'family@preset' with a registered family")
    if name in _PRESETS:
        raise ValueError(f"preset {name!r} is already registered")
    if not source:
        raise ValueError(f"preset {name!r}: name its source (paper section or recipe file)")
    spec = _REGISTRY[family]
    derived = preset_params(f"preset {name!r}", family, preset, spec.params_model, params)
    _PRESETS[name] = replace(spec, name=name, params_model=derived, source=source)
    return _PRESETS[name]


def preset_params(what: str, family: str, preset: str, model: type[BaseModel],
                  params: dict[str, Any]) -> type[BaseModel]:
    """``model`` with ``params`` as its defaults (``family@preset``); ``what`` starts the error messages.

    Shared by the objective and the correction registries (objectives.corrections).
    """
    unknown = sorted(set(params) - set(model.model_fields))
    if unknown:
        raise ValueError(f"{what}: {family!r} has no parameter {unknown[0]!r}")
    try:
        model(**params)  # the preset's own values must validate (pydantic does not check defaults)
    except ValidationError as err:
        raise ValueError(f"{what}: {err.errors()[0]['loc']} {err.errors()[0]['msg']}") from None
    fields: dict[str, Any] = {k: (model.model_fields[k].annotation,
                                  FieldInfo.merge_field_infos(model.model_fields[k], default=v))
                              for k, v in params.items()}
    return create_model(f"{model.__name__}_{preset}", __base__=model, **fields)


def available_objectives() -> list[str]:
    """Registered family names, sorted (presets: :func:`available_presets`)."""
    return sorted(_REGISTRY)


def available_presets() -> list[str]:
    """Registered ``family@preset`` names, sorted."""
    return sorted(_PRESETS)


def available_trl_losses() -> list[str]:
    """TRL's own losses by their objective names, ``trl:<loss>``."""
    return [TRL_PREFIX + loss for loss in TRL_LOSSES]


def _computed_by_trl(*args: Any, **kwargs: Any) -> ObjectiveOutput:
    raise TypeError("TRL's own losses are computed inside TRL's trainer, not called as a per-token objective")


def _trl_spec(name: str) -> ObjectiveSpec:
    loss = name.removeprefix(TRL_PREFIX)
    if loss not in TRL_LOSSES:
        raise ValueError(f"unknown TRL loss {name!r}; expected {'|'.join(available_trl_losses())}")
    return ObjectiveSpec(name, _computed_by_trl, NoParams, "TRL 1.16 GRPOTrainer", f"TRL's own {loss} loss",
                         kind="trl", trl_args=TRL_LOSSES[loss])


def get_spec(name: str) -> ObjectiveSpec:
    """The spec registered under ``name`` (a family or a preset), TRL's own loss (``trl:<loss>``), or loaded from
    ``"module.path:attribute"``."""
    if name.startswith(TRL_PREFIX):
        return _trl_spec(name)
    if ":" in name:
        return _load_plugin(name)
    if name in _PRESETS:
        return _PRESETS[name]
    if name not in _REGISTRY:
        raise ValueError(f"unknown objective {name!r}; expected one of {', '.join(available_objectives())}, "
                         f"a preset ({', '.join(available_presets())}) or an import path 'package.module:function'")
    return _REGISTRY[name]


def get_objective(name: str, **params: Any) -> Objective:
    """Bind ``name`` to validated parameters; errors name the parameter and list what is accepted."""
    spec = get_spec(name)
    if spec.kind == "trl":
        raise ValueError(f"objective {name!r} is TRL's own loss: TRL computes it, with GRPOConfig's parameters")
    return Objective(spec, bind_params(f"objective {spec.name!r}", spec.params_model, params))


def parameter_rows(model: type[BaseModel]) -> list[tuple[str, Any, str]]:
    """(name, default, help) for every parameter of a parameter model, in declaration order."""
    return [(n, f.default, f.description or "") for n, f in model.model_fields.items()]


def bind_params(what: str, model: type[BaseModel], params: dict[str, Any]) -> Any:
    """``model(**params)``, or a one-line ValueError starting with ``what`` that names the parameter and lists the
    accepted ones. Shared by the objective and the correction registries."""
    unknown = sorted(set(params) - set(model.model_fields))
    if unknown:
        accepted = ", ".join(model.model_fields) or "none"
        raise ValueError(f"{what} has no parameter {unknown[0]!r}; accepted: {accepted}")
    try:
        return model(**params)
    except ValidationError as err:
        first = err.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a check across parameters: its message names them
            raise ValueError(f"{what} parameters: {msg}") from None
        field_name = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{what} parameter {field_name!r}: {msg} (got {first.get('input')!r})") from None


def _load_plugin(path: str) -> ObjectiveSpec:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"objective plugin {path!r}: cannot import {module_name!r} ({err})") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise ValueError(f"objective plugin {path!r}: module {module_name!r} has no attribute {attr!r}")
    # A plugin registered with the decorator is found under its registered name.
    spec = next((s for s in _REGISTRY.values() if s.fn is fn), None)
    if spec is None:
        params = getattr(fn, "params", NoParams)
        uses_old_logp, uses_top_k = getattr(fn, "uses_old_logp", False), getattr(fn, "uses_top_k", False)
        _check_signature(path, fn, params, uses_old_logp, uses_top_k)
        summary = (inspect.getdoc(fn) or "").split("\n\n")[0].replace("\n", " ")
        spec = ObjectiveSpec(path, fn, params, getattr(fn, "paper", ""), summary, getattr(fn, "batch_level", False),
                             uses_old_logp, uses_top_k)
    _probe(path, spec)
    return spec


def _probe(path: str, spec: ObjectiveSpec) -> None:
    """Call a plugin once on a tiny batch so that a broken contract fails at load time, not inside training."""
    try:
        params = spec.params_model()
    except ValidationError:
        return  # parameters without defaults: nothing to call it with until they are given
    gen = torch.Generator().manual_seed(0)
    logp = (-torch.rand(2, 3, generator=gen, dtype=torch.float64)).requires_grad_()
    behaviour_logp = logp.detach() - 0.1 * torch.rand(2, 3, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    try:
        out = Objective(spec, params)(logp, behaviour_logp, torch.tensor([1.0, -1.0], dtype=torch.float64), mask,
                                      generator=gen)
    except Exception as err:
        raise ValueError(f"objective plugin {path!r} failed on a (2, 3) test batch: {err!r}") from err
    problem = _contract_problem(out, logp, mask)
    if problem:
        raise ValueError(f"objective plugin {path!r} breaks the contract: {problem}")


def _contract_problem(out: Any, logp: torch.Tensor, mask: torch.Tensor) -> str | None:
    if not isinstance(out, ObjectiveOutput):
        return f"it returned {type(out).__name__}, expected ObjectiveOutput(per_token_loss, metrics)"
    loss = out.per_token_loss
    if not isinstance(loss, torch.Tensor) or loss.shape != logp.shape:
        return f"per_token_loss must be a {tuple(logp.shape)} tensor, got {getattr(loss, 'shape', type(loss))}"
    if not loss.requires_grad:
        return "per_token_loss is not differentiable with respect to logp"
    if bool((loss.detach()[mask == 0] != 0).any()):
        return "per_token_loss is not 0 where mask is 0"
    if not all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in out.metrics.items()):
        return "metrics must be a dict[str, float]"
    return None
