"""`sweep status` prints each value one way: the trial table, the best table and the tally line agree."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from rich.console import Console

from workbench.sweeps.status import best_table, format_value, tally, trials_table


def rendered(table) -> str:
    console = Console(record=True, width=240)
    console.print(table)
    return console.export_text()


def test_one_value_reached_two_ways_prints_the_same():
    seed_value, mean = 0.26875, (0.2625 + 0.275) / 2  # the float mean is 0.26875000000000004
    assert mean != seed_value and f"{mean:.4f}" != f"{seed_value:.4f}"  # the raw floats would round apart
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="rounding", direction="maximize")
    attrs = {"objective": "drpo", "objective_params": {"delta": 0.15}, "run_fields": {"learning_rate": 3e-6},
             "seeds": [0], "seed_values": {"0": seed_value}}
    study.add_trial(optuna.trial.create_trial(params={"objective": "drpo"},
                                              distributions={"objective": CategoricalDistribution(["drpo"])},
                                              value=mean, user_attrs=attrs))
    shown = [rendered(trials_table(study)), rendered(best_table(study)), tally(study.trials).line()]
    for text in shown:
        assert "0.2687" in text and "0.2688" not in text, text
    assert "delta=0.15 learning_rate=3e-06" in shown[0]  # parameters keep their significant digits
    assert format_value(None) == "" and format_value(0.5) == "0.5000"
