"""combine_token_metrics over several ranks (collective faked): token-weighted means, the max of ``*/max`` and
``*_max``, the min of ``*_min``, ranks without tokens left out of the extremes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from workbench import ranks


def combine(monkeypatch, per_rank: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
    keys = sorted(per_rank[0][1])
    extreme = [any(k.endswith(s) for s in ranks.EXTREMES) for k in keys]
    rows = [[float(n)] + [m[k] if e else m[k] * n for k, e in zip(keys, extreme)] for n, m in per_rank]
    monkeypatch.setattr(ranks, "processes", lambda: SimpleNamespace(num_processes=len(per_rank), device="cpu"))
    monkeypatch.setattr(ranks, "gather", lambda row: torch.tensor(rows, dtype=torch.float64))
    return ranks.combine_token_metrics(per_rank[0][1], per_rank[0][0])


def test_means_are_token_weighted_and_extremes_are_extremes(monkeypatch):
    a = {"tv/mean": 0.1, "tv/max": 0.5, "correction/raw_ratio_min": 0.9, "correction/raw_ratio_max": 1.2}
    b = {"tv/mean": 0.4, "tv/max": 0.3, "correction/raw_ratio_min": 0.7, "correction/raw_ratio_max": 1.1}
    out = combine(monkeypatch, [(10, a), (30, b)])
    assert out["tv/mean"] == pytest.approx((0.1 * 10 + 0.4 * 30) / 40)
    assert out["tv/max"] == 0.5 and out["correction/raw_ratio_max"] == 1.2
    assert out["correction/raw_ratio_min"] == 0.7


def test_a_rank_without_tokens_does_not_set_an_extreme(monkeypatch):
    empty = {"correction/raw_ratio_min": 1.0, "correction/raw_ratio_max": 1.0, "tv/max": 0.0}
    full = {"correction/raw_ratio_min": 1.05, "correction/raw_ratio_max": 1.3, "tv/max": 0.2}
    out = combine(monkeypatch, [(0, empty), (12, full)])
    assert out == {"correction/raw_ratio_min": 1.05, "correction/raw_ratio_max": 1.3, "tv/max": 0.2}
