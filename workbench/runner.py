"""One training run, end to end: RunConfig → policy, task, rollout engine, trainer → run record.

``prepare_run`` does everything that can fail on bad input (task, objective, model path, batch
shape) before any folder is created; ``train`` then never raises for a run that goes wrong: the
failure is recorded in the run's summary with a one-line reason, so a sweep can go on.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
from transformers import PrinterCallback, TrainerCallback, set_seed
from trl import GRPOConfig

from .batches import BatchKeeper
from .diagnostics import StepDiagnostics
from .config import ConfigError, RunConfig, machine_error
from .objectives import Objective, correction_from_setting, get_objective, get_spec
from .ranks import main_first, main_then_share, processes, sigterm_fails_the_run
from .rollout import RolloutEngine, Truncation
from .models import gguf_source, load_policy
from .tasks import Task, evaluate, get_task
from .tasks.chat import chat_dataset, use_chat
from .tracking import STATUS_FAILED, STATUS_FINISHED, PeerRecorder, RunRecorder, start_wandb

if TYPE_CHECKING:
    from .trainer import WorkbenchGRPOTrainer

STATUS_PRUNED = "pruned"
STATUS_INTERRUPTED = "interrupted"  # stopped from outside (a signal): the configuration did not fail


class RunStopped(Exception):
    """Raised by an ``on_eval`` callback to stop a run early (a pruned sweep trial)."""


@dataclass
class PreparedRun:
    config: RunConfig
    run_dir: Path
    task: Task
    objective: Objective | None
    model: Any
    tokenizer: Any
    wandb_group: str | None
    wandb_name: str


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    main_process: bool = True  # under torchrun/accelerate, only the main process holds the record


def prepare_run(cfg: RunConfig, run_dir: Path | None = None, wandb_group: str | None = None,
                wandb_name: str | None = None) -> PreparedRun:
    """Validate everything and load the policy; raises ConfigError and creates nothing on bad input.

    Under torchrun or accelerate every rank calls this: each validates, the main process names the run folder
    (the default name holds the time) and loads the policy first (it may fill the cache the others read).
    """
    processes()  # joins the launch's process group, if any, before anything below needs it
    completions = cfg.prompts_per_step * cfg.num_generations
    if completions % cfg.gradient_accumulation_steps:
        raise ConfigError(f"gradient_accumulation_steps: must divide prompts_per_step × num_generations = "
                          f"{completions} (got {cfg.gradient_accumulation_steps})")
    task = get_task(cfg.task, **cfg.task_params)
    if cfg.beta and cfg.lora is None and gguf_source(cfg.model):
        raise ConfigError("beta: TRL loads the reference model from a folder and cannot read a GGUF file; "
                          "add lora (the base under the adapter is the reference) or set beta to 0")
    trl_loss = get_spec(cfg.objective).kind == "trl"  # TRL's own loss: no per-token objective of ours
    objective = None if trl_loss else get_objective(cfg.objective, **cfg.objective_params)
    check_trl_arguments(cfg)
    name = cfg.name or f"{cfg.objective.replace(':', '-')}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(run_dir) if run_dir is not None else Path(cfg.output_dir) / name
    run_dir, taken = main_then_share(lambda: (run_dir, (run_dir / "summary.json").exists()))
    if taken:
        raise ConfigError(f"name: run folder {run_dir} already holds a run; choose another name")
    set_seed(cfg.seed)
    model, tokenizer = main_first(lambda: load_policy(cfg.model, cfg.lora, task, seed=cfg.seed))
    use_chat(task, tokenizer)  # a chat model gets its prompts through its chat template
    return PreparedRun(cfg, run_dir, task, objective, model, tokenizer, wandb_group, wandb_name or name)


def check_trl_arguments(cfg: RunConfig) -> None:
    """Raise ConfigError when TRL refuses the GRPOConfig a run would build (a ``trl:`` loss's parameters above all).

    TRL validates its arguments only in GRPOConfig's constructor and offers no separate validator, so a config is
    built here for validation alone, before any folder exists (the constructor creates nothing); ``train`` builds
    the run's own.
    """
    _grpo_args(cfg, Path(cfg.output_dir))


def _grpo_args(cfg: RunConfig, run_dir: Path) -> GRPOConfig:
    per_device = cfg.prompts_per_step * cfg.num_generations // cfg.gradient_accumulation_steps
    spec = get_spec(cfg.objective)
    trl_params = cfg.objective_params if spec.kind == "trl" else {}
    try:
        with _trl_notices_silenced():  # its __post_init__ is where transformers' W&B integration is first imported
            return GRPOConfig(
                output_dir=str(run_dir / "trainer"),
                per_device_train_batch_size=per_device,
                gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                steps_per_generation=cfg.steps_per_generation,
                num_generations=cfg.num_generations,
                num_iterations=cfg.num_iterations,
                max_completion_length=cfg.max_completion_length,
                temperature=cfg.temperature,
                learning_rate=cfg.learning_rate,
                lr_scheduler_type="constant",  # RL papers train at a constant rate; decay would confound late steps
                max_grad_norm=cfg.max_grad_norm,
                beta=cfg.beta,
                max_steps=cfg.max_steps,
                logging_steps=1,
                save_strategy="no",
                report_to="none",  # tracking.py owns W&B, so offline-by-default and grouping are ours
                disable_tqdm=True,
                seed=cfg.seed,
                data_seed=cfg.seed,
                bf16=cfg.train_precision == "bf16",
                use_cpu=not torch.cuda.is_available(),
                **spec.trl_args,
                **trl_params,
            )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"objective_params for {cfg.objective}: {str(err).splitlines()[0]}") from None


class _EvalCallback(TrainerCallback):
    """Held-out accuracy every ``eval_every`` steps and at the end; stops the run when on_eval says so."""

    def __init__(self, run: PreparedRun, on_eval: Callable[[int, dict[str, float]], None] | None,
                 diagnostics: StepDiagnostics):
        self.run, self.on_eval, self.diagnostics = run, on_eval, diagnostics
        self.last: dict[str, float] | None = None
        self.stopped = False

    def on_step_end(self, args, state, control, **kwargs):
        cfg = self.run.config
        if state.global_step % cfg.eval_every and state.global_step != state.max_steps:
            return
        # Evaluated once, on the main process, while the other ranks wait: the numbers of a 1-process run.
        self.last, stop = main_then_share(lambda: self._evaluate(state.global_step, kwargs["model"]))
        self.diagnostics.add_step_scalars(self.last)  # in this step's log line
        if stop:
            self.stopped = True
            control.should_training_stop = True  # the step is still logged before the loop ends

    def _evaluate(self, step: int, model: torch.nn.Module) -> tuple[dict[str, float], bool]:
        """The held-out metrics and whether on_eval stops the run."""
        metrics = run_eval(self.run, model, seed=self.run.config.seed + step)
        if self.on_eval is not None:
            try:
                self.on_eval(step, metrics)
            except RunStopped:
                return metrics, True
        return metrics, False


class _ProgressCallback(TrainerCallback):
    def __init__(self, progress: Any, task_id: Any):
        self.progress, self.task_id = progress, task_id

    def on_log(self, args, state, control, logs=None, **kwargs):
        # The end-of-training log line has no step metrics: keep the last ones shown.
        shown = {field: logs[key] for field, key in (("reward", "reward"), ("tv", "tv/mean")) if key in (logs or {})}
        self.progress.update(self.task_id, completed=state.global_step, **shown)


def run_eval(run: PreparedRun, model: torch.nn.Module, seed: int) -> dict[str, float]:
    cfg = run.config
    was_training = model.training
    model.eval()
    try:
        return evaluate(model, run.tokenizer, run.task, n_prompts=cfg.eval_prompts, k=cfg.eval_samples,
                        temperature=cfg.temperature, max_new_tokens=cfg.max_completion_length, seed=seed)
    finally:
        model.train(was_training)


def train(run: PreparedRun, progress: bool = False,
          on_eval: Callable[[int, dict[str, float]], None] | None = None) -> RunResult:
    """Train, evaluate and record; failures are recorded in the summary, not raised.

    Under several processes every rank trains and samples; the main process alone writes the record, the W&B
    run and the progress bar, and records the failure when another rank dies (torchrun's SIGTERM).
    """
    cfg = run.config
    config_dict = cfg.model_dump(mode="json")
    main = processes().is_main_process
    if main:
        wandb_run = start_wandb(run.run_dir, config_dict, run.wandb_name, cfg.tracking.wandb_mode,
                                cfg.tracking.wandb_project, run.wandb_group or cfg.tracking.group,
                                job_type=cfg.objective)
        recorder: RunRecorder = RunRecorder(run.run_dir, config_dict, wandb_run)
    else:
        recorder = PeerRecorder(run.run_dir, config_dict)
    summary: dict[str, Any] = {}
    diagnostics = StepDiagnostics(recorder, cfg.tracking.histogram_every, cfg.tracking.histogram_bins,
                                  batch_keeper(cfg, run.run_dir, main))  # no keeper unless keep_batches_every
    eval_cb = _EvalCallback(run, on_eval, diagnostics)
    with sigterm_fails_the_run():
        try:
            set_seed(cfg.seed)
            summary["base_eval"] = main_then_share(lambda: run_eval(run, run.model, seed=cfg.seed))
            recorder.log_scalars(0, summary["base_eval"])
            # The sampler copy must be taken before the trainer patches the policy's forward.
            engine = RolloutEngine(run.model, run.tokenizer, cfg.rollout_precision, cfg.max_completion_length,
                                   cfg.temperature, cfg.top_logprobs, lag=cfg.rollout_lag,
                                   truncation=Truncation(cfg.sampling_top_p, cfg.sampling_top_k, cfg.sampling_min_p,
                                                         cfg.behaviour_logprobs))
            trainer = build_trainer(run, engine, diagnostics, callbacks=[eval_cb, engine])
            _train_with_progress(trainer, cfg, progress and main)
            summary["eval"] = eval_cb.last
            if diagnostics.max_off_policy == 0.0:
                recorder.flag("zero_shift")  # μ = π on every token: the objectives could not differ
            status = STATUS_PRUNED if eval_cb.stopped else STATUS_FINISHED
        except KeyboardInterrupt:  # Ctrl-C, or a sweep stopped by SIGINT/SIGTERM (sweeps.stop): cut short, not failed
            recorder.finish(STATUS_INTERRUPTED, **{**summary, "eval": eval_cb.last})
            raise
        except Exception as err:  # noqa: BLE001 - any failure of a run is recorded, the caller goes on
            if machine_error(err):
                raise  # a full disk or unwritable folder is not the run's failure: the caller stops (sweeps re-run it)
            status = STATUS_FAILED
            if isinstance(err, FloatingPointError):  # the trainer's non-finite loss
                recorder.note_nonfinite_loss()
            summary["failure"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            summary["eval"] = eval_cb.last
    recorder.finish(status, **summary)
    return RunResult(run.run_dir, recorder.summary, main)


@contextlib.contextmanager
def _trl_notices_silenced() -> Iterator[None]:
    """Where a run starts, TRL's and transformers' notices are silenced, not at import time: the first import of
    transformers' W&B integration (by GRPOConfig, then TRL's trainer) prints "[INFO] Running in WANDB offline mode"
    under WANDB_MODE=offline (transformers offers no switch), and TRL warns that ``rollout_func`` is experimental
    (the pin and tests/test_trainer.py guard it, so the notice is noise)."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def build_trainer(run: PreparedRun, engine: RolloutEngine, diagnostics: StepDiagnostics,
                  callbacks: list[TrainerCallback]) -> WorkbenchGRPOTrainer:
    """The run's trainer; its module is imported here, where a run starts, not when this module is imported."""
    with _trl_notices_silenced():
        from .trainer import LossSetting, WorkbenchGRPOTrainer

    cfg = run.config
    trainer = WorkbenchGRPOTrainer(
        model=run.model,
        reward_funcs=[run.task.reward],
        args=_grpo_args(cfg, run.run_dir),
        train_dataset=chat_dataset(run.task, run.task.train_dataset(cfg.seed)),
        processing_class=run.tokenizer,
        rollout_func=engine,
        loss=LossSetting(run.objective, cfg.aggregation, correction_from_setting(cfg.correction), cfg.seed,
                         engine.top_logprobs),
        diagnostics=diagnostics,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # the run record and the progress bar replace its dict dumps
    return trainer


def batch_keeper(cfg: RunConfig, run_dir: Path, main: bool) -> BatchKeeper | None:
    """The keeper of ``tracking.keep_batches_every`` (main process; TRL's own losses keep nothing: no per-token loss)."""
    every = cfg.tracking.keep_batches_every
    if every is None or not main or get_spec(cfg.objective).kind == "trl":
        return None
    return BatchKeeper(run_dir, every, cfg.tracking.keep_batches_max_mb)


def _train_with_progress(trainer: WorkbenchGRPOTrainer, cfg: RunConfig, progress: bool) -> None:
    if not progress:
        trainer.train()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("reward {task.fields[reward]:.3f}  tv {task.fields[tv]:.2e}"))
    with Progress(*columns) as bar:
        task_id = bar.add_task(f"{cfg.objective} seed {cfg.seed}", total=cfg.max_steps, reward=float("nan"),
                               tv=float("nan"))
        trainer.add_callback(_ProgressCallback(bar, task_id))
        trainer.train()
