"""DESIGN.md's closed-form gradient weights g_t, written independently of the objectives (numpy, float64).

Each takes π, μ, A (arrays of one shape) and the objective's parameters, and returns g = ∂J/∂log π per token.
``w`` is the advantage weighting of the quadratic regularisers: |A| (abs), 1 (const) or A² (square).
"""

from __future__ import annotations

import numpy as np

WEIGHTS = {"abs": np.abs, "const": np.ones_like, "square": np.square}


def pg(pi, mu, a):
    return pi / mu * a


def grpo(pi, mu, a, epsilon_low=0.2, epsilon_high=0.2, clip_ratio_c=None):
    r = pi / mu
    clipped = ((a > 0) & (r > 1 + epsilon_high)) | ((a < 0) & (r < 1 - epsilon_low))
    if clip_ratio_c is not None:
        clipped |= (a < 0) & (r > clip_ratio_c)
    return r * a * ~clipped


def pushed(pi, mu, a):
    """The token moved the way its advantage pushes it."""
    return ((a > 0) & (pi > mu)) | ((a < 0) & (pi < mu))


def tv(pi, mu):
    return np.abs(pi - mu)


def bernoulli_kl(pi, mu):
    return mu * np.log(mu / pi) + (1 - mu) * np.log((1 - mu) / (1 - pi))


def dppo_bound(a, delta, delta_low=None, delta_high=None):
    """δ_high for A > 0, δ_low otherwise, each defaulting to δ."""
    return np.where(a > 0, delta if delta_high is None else delta_high, delta if delta_low is None else delta_low)


def dppo_tv(pi, mu, a, delta=0.15, clip_c=20.0, delta_low=None, delta_high=None):
    keep = ~(pushed(pi, mu, a) & (tv(pi, mu) > dppo_bound(a, delta, delta_low, delta_high)))
    return np.minimum(pi / mu, clip_c) * a * keep


def dppo_kl(pi, mu, a, delta=0.05, clip_c=20.0, delta_low=None, delta_high=None):
    keep = ~(pushed(pi, mu, a) & (bernoulli_kl(pi, mu) > dppo_bound(a, delta, delta_low, delta_high)))
    return np.minimum(pi / mu, clip_c) * a * keep


def spo(pi, mu, a, epsilon=0.2, advantage_weight="abs"):
    r = pi / mu
    if advantage_weight == "abs":  # the table's form
        return r * a * (1 - np.sign(a * (r - 1)) * np.abs(r - 1) / epsilon)
    return r * (a - WEIGHTS[advantage_weight](a) * (r - 1) / epsilon)


def drpo(pi, mu, a, delta=0.15, advantage_weight="abs"):
    r = pi / mu
    if advantage_weight == "abs":  # the table's form
        return r * a * (1 - np.sign(a * (r - 1)) * np.abs(pi - mu) / delta)
    return r * (a - WEIGHTS[advantage_weight](a) * (pi - mu) / delta)


def kl_cov_penalised(pi, mu, a, beta=1.0):
    """A token KL-Cov selected: r·A − β·sign(log r)."""
    return pi / mu * a - beta * np.sign(np.log(pi / mu))


def covariance(logp, a, valid):
    """Cov_t over the valid tokens."""
    return (a - a[valid].mean()) * (logp - logp[valid].mean())


def against_old(name, pi, mu, old, a, **params):
    """grpo / dppo with ``trust_region_against: old``: the clip or mask reads π/π_old, the weight stays π/μ."""
    if name == "grpo":
        return grpo(pi, old, a, **params) * old / mu
    kept = CLOSED_FORMS[name](pi, old, a, **{**params, "clip_c": np.inf}) != 0
    return np.minimum(pi / mu, params.get("clip_c", 20.0)) * a * kept


def cispo(pi, mu, a, epsilon_low=None, epsilon_high=4.0):
    low = -np.inf if epsilon_low is None else 1 - epsilon_low
    return np.clip(pi / mu, low, 1 + epsilon_high) * a


def sapo(pi, mu, a, temperature_pos=1.0, temperature_neg=1.05):
    r = pi / mu
    tau = np.where(a > 0, temperature_pos, temperature_neg)
    gate = 1 / (1 + np.exp(-tau * (r - 1)))
    return 4 * gate * (1 - gate) * r * a


def gpg(pi, mu, a):
    return a * np.ones_like(pi)


def row_mean(x, mask):
    """Mean over each row's valid entries, broadcast back over the row (0 for an empty row)."""
    return ((x * mask).sum(-1, keepdims=True) / np.maximum(mask.sum(-1, keepdims=True), 1)) * np.ones_like(x)


def gspo_ratio(pi, mu, mask):
    return np.exp(row_mean(np.log(pi / mu), mask))


def gspo(pi, mu, a, mask, epsilon_low=3e-4, epsilon_high=4e-4):
    s = gspo_ratio(pi, mu, mask)
    clipped = ((a > 0) & (s > 1 + epsilon_high)) | ((a < 0) & (s < 1 - epsilon_low))
    return s * a * ~clipped


def gmpo_clipped(pi, mu, a, epsilon_low=0.4, epsilon_high=0.4):
    log_r = np.log(pi / mu)
    return ((a > 0) & (log_r > epsilon_high)) | ((a < 0) & (log_r < -epsilon_low))


def gmpo(pi, mu, a, mask, epsilon_low=0.4, epsilon_high=0.4):
    log_r = np.log(pi / mu)
    clipped = gmpo_clipped(pi, mu, a, epsilon_low, epsilon_high)
    x = np.where(a == 0, 0.0, np.clip(log_r, -epsilon_low, epsilon_high) * clipped + log_r * ~clipped)
    return np.exp(row_mean(x, mask)) * a * ~clipped


CLOSED_FORMS = {"pg": pg, "grpo": grpo, "dppo_tv": dppo_tv, "dppo_kl": dppo_kl, "spo": spo, "drpo": drpo,
                "cispo": cispo, "sapo": sapo, "gpg": gpg,
                # Without the sampler's top-K (K = 0) the top-K divergences are the binary ones.
                "dppo_topk_tv": dppo_tv, "dppo_topk_kl": dppo_kl}
# Sequence-level ratios: the weight of a token depends on its sequence's valid tokens (the mask).
SEQUENCE_FORMS = {"gspo": gspo, "gmpo": gmpo}


def near_an_edge(name, pi, mu, a, params, tol=1e-9, mask=None):
    """Tokens within float noise of a discontinuity (clip edge, mask edge), where either side is right."""
    r = pi / mu
    if name == "grpo":
        high, low = params.get("epsilon_high", 0.2), params.get("epsilon_low", 0.2)
        dual = np.abs(r - params["clip_ratio_c"]) < tol if params.get("clip_ratio_c") else False
        return (np.abs(r - 1 - high) < tol) | (np.abs(r - 1 + low) < tol) | dual
    if name in ("dppo_tv", "dppo_kl", "dppo_topk_tv", "dppo_topk_kl"):
        divergence, default = (tv, 0.15) if name.endswith("tv") else (bernoulli_kl, 0.05)
        bound = dppo_bound(a, params.get("delta", default), params.get("delta_low"), params.get("delta_high"))
        return np.abs(divergence(pi, mu) - bound) < tol
    if name == "cispo":
        low = params.get("epsilon_low")
        return (np.abs(r - 1 - params.get("epsilon_high", 4.0)) < tol) | (
            np.abs(r - 1 + low) < tol if low is not None else False)
    if name == "gspo":
        s = gspo_ratio(pi, mu, mask)
        return (np.abs(s - 1 - params.get("epsilon_high", 4e-4)) < tol) | (
            np.abs(s - 1 + params.get("epsilon_low", 3e-4)) < tol)
    if name == "gmpo":  # an edge token changes its sequence's ρ: the whole row is ambiguous
        log_r = np.log(r)
        edge = (np.abs(log_r - params.get("epsilon_high", 0.4)) < tol) | (
            np.abs(log_r + params.get("epsilon_low", 0.4)) < tol)
        return np.broadcast_to((edge & mask).any(-1, keepdims=True), r.shape) | edge
    return np.zeros_like(r, dtype=bool)
