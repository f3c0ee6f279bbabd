"""DPPO with Top-K divergences (Stable-RL's ``dppo_topk_tv`` / ``dppo_topk_kl``).

    S_t = the sampler's K most likely tokens at position t, plus the sampled token
    D_TV = ½·( Σ_{i∈S} |π_i − μ_i| + |π_rest − μ_rest| ),    x_rest = 1 − Σ_{i∈S} x_i
    D_KL = Σ_{i∈S} μ_i·log(μ_i/π_i) + μ_rest·log(μ_rest/π_rest)
    J_t, g_t, M_t as DPPO (``dppo``): the directional mask drops tokens with D > δ pushed the way A pushes

The binary divergences of ``dppo_tv``/``dppo_kl`` are the case K = 0 (the sampled token against the rest);
with K > 0 the trust region sees how the whole head of the distribution moved, not the sampled token's
probability alone. π at S must come from the same forward pass as log π (the trainer reads it from that
pass's hidden states); μ at S from the sampler (RunConfig ``rollout_top_k``). Without them (``top_k`` None:
plots, tests of the contract) the divergence falls back to K = 0.
Qi et al., Rethinking the Trust Region in LLM Reinforcement Learning, arXiv 2602.04879 (Top-K approximation).
"""

from __future__ import annotations

import torch
from pydantic import Field

from .dppo import _dppo, _DPPOParams
from .registry import ObjectiveOutput, register_objective


class DPPOTopKTVParams(_DPPOParams):
    delta: float = Field(0.15, gt=0, description="trust region δ on the top-K total variation")


class DPPOTopKKLParams(_DPPOParams):
    delta: float = Field(0.05, gt=0, description="trust region δ on the top-K KL(μ‖π)")


def topk_divergence(kind: str, logp: torch.Tensor, behaviour_logp: torch.Tensor,
                    top_k: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """D over S ∪ {rest}; ``top_k`` = (log π, log μ) at S, (B, T, |S|), a token listed twice at −inf in both."""
    with torch.no_grad():
        pi_s, mu_s = (logp.unsqueeze(-1), behaviour_logp.unsqueeze(-1)) if top_k is None else top_k
        pi_s, mu_s = pi_s.to(logp.dtype), mu_s.to(logp.dtype)
        p, q = pi_s.exp(), mu_s.exp()
        p_rest, q_rest = (1 - p.sum(-1)).clamp(min=0), (1 - q.sum(-1)).clamp(min=0)
        if kind == "tv":
            return 0.5 * ((p - q).abs().sum(-1) + (p_rest - q_rest).abs())
        # 0·log(0/x) = 0; μ_i > 0 with π_i = 0 is +inf (outside any trust region).
        head = torch.where(q > 0, q * (mu_s - pi_s), torch.zeros_like(q)).sum(-1)
        rest = torch.where(q_rest > 0, q_rest * (q_rest.log() - p_rest.log()), torch.zeros_like(q_rest))
        return head + rest


def _topk(kind, logp, behaviour_logp, advantages, mask, params, top_k) -> ObjectiveOutput:
    outside = topk_divergence(kind, logp, behaviour_logp, top_k) > params.bounds(advantages)
    return _dppo(logp, behaviour_logp, behaviour_logp, advantages, mask, outside, params.clip_c)


@register_objective("dppo_topk_tv", params=DPPOTopKTVParams, paper="arXiv 2602.04879", uses_top_k=True)
def dppo_topk_tv(logp, behaviour_logp, advantages, mask, params: DPPOTopKTVParams, generator=None,
                 top_k=None) -> ObjectiveOutput:
    """DPPO's directional mask on the total variation over the sampler's top-K tokens and the rest."""
    return _topk("tv", logp, behaviour_logp, advantages, mask, params, top_k)


@register_objective("dppo_topk_kl", params=DPPOTopKKLParams, paper="arXiv 2602.04879", uses_top_k=True)
def dppo_topk_kl(logp, behaviour_logp, advantages, mask, params: DPPOTopKKLParams, generator=None,
                 top_k=None) -> ObjectiveOutput:
    """DPPO's directional mask on KL(μ‖π) over the sampler's top-K tokens and the rest."""
    return _topk("kl", logp, behaviour_logp, advantages, mask, params, top_k)
