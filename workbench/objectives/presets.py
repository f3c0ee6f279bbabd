"""Presets: the papers' and recipes' own settings, named ``family@preset`` and citing their source.

The families' defaults are the workbench's choices (DESIGN.md); a preset says what the authors ran.
"""

from __future__ import annotations

from .registry import register_preset

register_preset("drpo@authors", "DRPO authors' released code (UniRL), default δ = 12.5; DESIGN.md 'DRPO's δ'",
                delta=12.5)
register_preset("spo@authors", "DRPO authors' released code (UniRL) runs SPO with the same 12.5; DESIGN.md, issue 12",
                epsilon=12.5)
register_preset("grpo@dapo", "DAPO, arXiv 2503.14476 §3.1 (Clip-Higher: ε_lo 0.2, ε_hi 0.28)",
                epsilon_low=0.2, epsilon_high=0.28)
register_preset("grpo@dual_clip", "verl's actor default clip_ratio_c = 3 (Ye et al., arXiv 1912.09729)",
                clip_ratio_c=3.0)
register_preset("clip_cov@7b", "Clip-Cov 7B recipe (verl recipe/entropy/7b_clip_cov.sh): clip range 1.0, "
                "ρ 2e-4, Cov bounds 1…5; arXiv 2505.22617", epsilon_low=1.0, epsilon_high=1.0)
register_preset("kl_cov@32b", "KL-Cov 32B recipe (verl recipe/entropy/32b_kl_cov.sh): ρ = 2e-4; arXiv 2505.22617",
                ratio=2e-4)
