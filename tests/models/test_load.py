"""The built-in policy: a warm start in the regime where RL has a signal, cached; real loading paths."""

from __future__ import annotations

import pytest
import torch

from workbench.config import ConfigError, LoraSettings
from workbench.models import char_tokenizer, load_policy, tiny_policy_folder
from workbench.models import load as policy_module
from workbench.tasks import evaluate, get_task


def test_char_tokenizer_round_trips_and_pads_left():
    tok = char_tokenizer("0123456789+=")
    ids = tok(["12+7=", "3+4="], padding=True, padding_side="left")["input_ids"]
    assert ids[1][0] == tok.pad_token_id and len(ids[0]) == len(ids[1]) == 5
    assert tok.decode(ids[0]) == "12+7="
    assert tok.batch_decode([ids[0][:2] + [tok.eos_token_id]], skip_special_tokens=True) == ["12"]


def test_the_tiny_policy_starts_where_rl_has_a_signal():
    """Sampled held-out accuracy between 10% and 60%: the policy knows the answer without preferring it."""
    task = get_task("arithmetic")
    model, tokenizer = load_policy("tiny", None, task)
    acc = evaluate(model, tokenizer, task, n_prompts=80, k=8, temperature=1.0, max_new_tokens=8, seed=0)
    assert 0.10 <= acc["eval/accuracy"] <= 0.60, acc
    assert acc["eval/greedy_accuracy"] > acc["eval/accuracy"]  # the answer is the mode, not the mass


def test_the_warm_start_is_cached_and_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    monkeypatch.setitem(policy_module.WARM_START, "steps", 3)
    task = get_task("arithmetic")
    folder = tiny_policy_folder(task)
    weights = (folder / "model.safetensors").read_bytes()
    assert tiny_policy_folder(task) == folder and (folder / "model.safetensors").read_bytes() == weights
    again, _ = policy_module.warm_start(task)
    cached, _ = load_policy("tiny", None, task)
    for (name, a), b in zip(again.state_dict().items(), cached.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # Another teacher is another base policy.
    assert tiny_policy_folder(get_task("arithmetic", teacher_accuracy=0.5)) != folder


def test_a_local_folder_loads_like_a_hub_model(tmp_path):
    task = get_task("arithmetic")
    model, tokenizer = load_policy("tiny", None, task)
    model.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(tmp_path / "saved")
    loaded, loaded_tok = load_policy(str(tmp_path / "saved"), None, task)
    assert loaded_tok("12+7=")["input_ids"] == tokenizer("12+7=")["input_ids"]
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_lora_wraps_the_policy_with_trainable_adapters_only():
    model, _ = load_policy("tiny", LoraSettings(r=4, alpha=8), get_task("arithmetic"))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


@pytest.mark.parametrize("name, needle", [("./no/such/folder", "neither"), ("nobody/no-such-model", "HF_HUB_OFFLINE")])
def test_a_model_that_cannot_be_loaded_is_a_one_line_config_error(name, needle):
    with pytest.raises(ConfigError, match="^model: ") as err:
        load_policy(name, None, get_task("arithmetic"))
    assert needle in str(err.value) and "\n" not in str(err.value)
