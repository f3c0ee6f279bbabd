"""`grpo` against TRL 1.16's own `grpo` loss: same model, same tokens, same behaviour log-probs.

The reference is what TRL's `_compute_loss` returns, never a copy of its code: a TRL release that
changes its clip or its aggregation fails here, and so does a sign or direction error of ours.
"""

from __future__ import annotations

import pytest
import torch

datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl")

from workbench.objectives import get_objective  # noqa: E402

CHARS = list("0123456789+-=abcdefghijklmnop ")


def tiny_tokenizer() -> transformers.PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    config = transformers.Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1, intermediate_size=64,
                                      pad_token_id=0, eos_token_id=1, bos_token_id=1)
    model = transformers.Qwen2ForCausalLM(config)
    args = trl.GRPOConfig(output_dir=str(tmp_path_factory.mktemp("trl")), loss_type="grpo", beta=0.0,
                          epsilon=0.2, per_device_train_batch_size=4, num_generations=4, max_completion_length=6,
                          report_to="none", use_cpu=True, logging_steps=1)
    dataset = datasets.Dataset.from_dict({"prompt": ["1+1=", "2+3=", "4+4=", "5-2="]})
    out = trl.GRPOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                          args=args, train_dataset=dataset, processing_class=tokenizer)
    out.model.eval()  # TRL's eval mode: no division by gradient-accumulation steps
    return out


def crafted_inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    """4 completions of up to 6 tokens, left-padded prompts, ragged completions, advantages of both signs."""
    gen = torch.Generator().manual_seed(seed)
    prompt_ids = torch.randint(2, len(CHARS) + 2, (4, 4), generator=gen)
    prompt_mask = torch.ones(4, 4, dtype=torch.long)
    prompt_mask[0, :1] = 0
    completion_ids = torch.randint(2, len(CHARS) + 2, (4, 6), generator=gen)
    completion_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]])
    return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
            "completion_mask": completion_mask, "advantages": torch.tensor([1.3, -0.7, 0.4, -1.1]),
            "num_items_in_batch": completion_mask.sum()}


def policy_logps(trainer, inputs) -> torch.Tensor:
    """log π of the completion tokens through TRL's own helper, differentiable."""
    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    logp, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, input_ids, attention_mask,
                                                            inputs["completion_ids"].size(1))
    return logp


def current_logps(trainer, inputs) -> torch.Tensor:
    return policy_logps(trainer, inputs).detach()


def perturbed_behaviour(logp: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """μ such that r = π/μ spans both sides of both clip edges (|log r| up to 0.5)."""
    gen = torch.Generator().manual_seed(seed)
    return logp - (torch.rand(logp.shape, generator=gen) - 0.5)


def our_grpo_loss(logp, behaviour_logp, inputs) -> torch.Tensor:
    """Our per-token loss under GRPO's aggregation: mean over each sequence's tokens, then over sequences."""
    mask = inputs["completion_mask"].float()
    logp = logp.clone().requires_grad_()
    out = get_objective("grpo", epsilon_low=0.2, epsilon_high=0.2)(logp, behaviour_logp, inputs["advantages"], mask)
    return ((out.per_token_loss.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean())


def test_grpo_matches_trl_on_a_batch(trainer):
    inputs = crafted_inputs()
    logp = current_logps(trainer, inputs)
    behaviour_logp = perturbed_behaviour(logp)
    ratio = (logp - behaviour_logp).exp()[inputs["completion_mask"].bool()]
    assert (ratio > 1.2).any() and (ratio < 0.8).any(), "the crafted batch must exercise both clip edges"

    with torch.no_grad():
        theirs = trainer._compute_loss(trainer.model, {**inputs, "old_per_token_logps": behaviour_logp})
    ours = our_grpo_loss(logp, behaviour_logp, inputs)
    torch.testing.assert_close(ours.double(), theirs.double(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("row", range(4))
def test_grpo_matches_trl_one_completion_at_a_time(trainer, row):
    batch = crafted_inputs(seed=2)
    inputs = {k: (v[row:row + 1] if k != "num_items_in_batch" else batch["completion_mask"][row].sum())
              for k, v in batch.items()}
    logp = current_logps(trainer, inputs)
    behaviour_logp = perturbed_behaviour(logp, seed=3 + row)
    with torch.no_grad():
        theirs = trainer._compute_loss(trainer.model, {**inputs, "old_per_token_logps": behaviour_logp})
    torch.testing.assert_close(our_grpo_loss(logp, behaviour_logp, inputs).double(), theirs.double(), rtol=0, atol=1e-6)


def test_grpo_gradient_matches_trl(trainer):
    """The parameter gradients agree too: same loss surface, not just the same value."""
    inputs = crafted_inputs(seed=4)
    behaviour_logp = perturbed_behaviour(current_logps(trainer, inputs), seed=5)
    trainer.model.zero_grad()
    trainer._compute_loss(trainer.model, {**inputs, "old_per_token_logps": behaviour_logp}).backward()
    theirs = [p.grad.clone() for p in trainer.model.parameters()]
    trainer.model.zero_grad()

    logp = policy_logps(trainer, inputs)
    mask = inputs["completion_mask"].float()
    out = get_objective("grpo")(logp, behaviour_logp, inputs["advantages"], mask)
    ((out.per_token_loss.sum(-1) / mask.sum(-1)).mean()).backward()
    for mine, ref in zip((p.grad for p in trainer.model.parameters()), theirs):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-7)
    trainer.model.zero_grad()


# (our objective and parameters, TRL's trainer attributes for the same loss, the aggregation TRL uses for it)
LOSSES = {
    "cispo": ({"epsilon_high": 1.5}, {"loss_type": "cispo", "epsilon_high": 2.5}, "token_mean"),
    "sapo": ({"temperature_pos": 1.0, "temperature_neg": 1.05}, {"loss_type": "sapo"}, "sequence_mean"),
    "gspo": ({"epsilon_low": 0.05, "epsilon_high": 0.05},
             {"loss_type": "grpo", "importance_sampling_level": "sequence", "epsilon_low": 0.05, "epsilon_high": 0.05},
             "sequence_mean"),
    "vespo": ({}, {"loss_type": "vespo"}, "token_mean"),
    "luspo": ({"epsilon_low": 0.05, "epsilon_high": 0.05},
              {"loss_type": "luspo", "importance_sampling_level": "sequence", "epsilon_low": 0.05, "epsilon_high": 0.05},
              "sequence_mean"),  # TRL sums each sequence's tokens: our |y_i|·loss under a per-sequence mean
}


def aggregate(per_token_loss, mask, inputs, how):
    """TRL's aggregation in eval mode: dapo/cispo over the batch's tokens, grpo/sapo per sequence then batch."""
    if how == "token_mean":
        return per_token_loss.sum() / inputs["num_items_in_batch"]
    return (per_token_loss.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_new_objectives_match_trl_loss_and_gradient(trainer, monkeypatch, name):
    ours_params, theirs, how = LOSSES[name]
    for attr, value in theirs.items():
        monkeypatch.setattr(trainer, attr, value)
    inputs = crafted_inputs(seed=6)
    behaviour_logp = perturbed_behaviour(current_logps(trainer, inputs), seed=7)
    mask = inputs["completion_mask"].float()
    if name == "cispo":  # every other token: r × e, so the weight's cap 1 + ε_hi = 2.5 bites on some tokens only
        behaviour_logp = behaviour_logp - 1.0 * (torch.arange(6) % 2)
        ratio = (current_logps(trainer, inputs) - behaviour_logp).exp()[mask.bool()]
        assert (ratio > 2.5).any() and (ratio < 2.5).any()
    if name in ("gspo", "luspo"):
        seq = ((current_logps(trainer, inputs) - behaviour_logp) * mask).sum(-1) / mask.sum(-1)
        assert (seq.abs() > 0.05).any() and (seq.abs() < 0.05).any(), "some sequences clipped, some not"

    trainer.model.zero_grad()
    theirs_loss = trainer._compute_loss(trainer.model, {**inputs, "old_per_token_logps": behaviour_logp})
    theirs_loss.backward()
    theirs_grad = [p.grad.clone() for p in trainer.model.parameters()]
    trainer.model.zero_grad()

    logp = policy_logps(trainer, inputs)
    out = get_objective(name, **ours_params)(logp, behaviour_logp, inputs["advantages"], mask)
    ours_loss = aggregate(out.per_token_loss, mask, inputs, how)
    ours_loss.backward()
    torch.testing.assert_close(ours_loss.double(), theirs_loss.double(), rtol=0, atol=1e-6)
    for mine, ref in zip((p.grad for p in trainer.model.parameters()), theirs_grad):
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-7)
    trainer.model.zero_grad()
