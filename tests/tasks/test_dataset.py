"""``task: dataset``: each reward on hand-written cases, every file format, bad input through the CLI, a tiny run.

The CLI cases run the real ``workbench run`` command in this process (typer's runner: the same command, error
handler and exit status, without paying an interpreter start per case); one of them also runs as a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from runs import tiny_run
from typer.testing import CliRunner

from workbench.analysis.text import task_sentence
from workbench.cli import app
from workbench.models import load as policy_load
from workbench.config import ConfigError
from workbench.tasks import get_task
from workbench.tasks import rewards
from workbench.tasks.chat import as_prompt, chat_dataset
from workbench.tasks.dataset import describe
from workbench.tasks.rewards import extract_number, final_answer, make_reward

GSM8K_ROWS = [{"question": f"Ann has {a} apples and buys {b} more. How many apples does she have?",
               "answer": f"She has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b:,}"}
              for a, b in ((3, 4), (12, 30), (500, 734), (7, 8), (1000, 999), (2, 2), (40, 2), (6, 9), (11, 11), (5, 0))]
# Short sums over a few characters: the tiny policy's character vocabulary covers them (its warm start is cached
# by the rows' content, so every test run after the first reuses it).
SUMS = [{"question": f"{a}+{b}", "answer": str(a + b)} for a in range(0, 10, 2) for b in range(1, 10, 2)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def reward(name: str, completion: str, answer: str, **params) -> float:
    return float(make_reward(name, params)(completion, answer))


# ---- rewards ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("completion, answer, expected", [
    ("#### 1,234", "1234", 1.0),
    ("She sells 1,234 cups.\n#### 1,234", "Worked solution ... #### 1,234", 1.0),
    ("The answer is 1234.", "#### 1,234", 1.0),
    ("The temperature fell to -5 degrees", "-5", 1.0),
    ("#### -1,234", "-1234", 1.0),
    ("5", "-5", 0.0),
    ("10-3=7", "7", 1.0),  # a minus after a digit is subtraction, not a sign
    ("first 3, then 4", "4", 1.0),  # the last number
    ("#### 12 and then 13", "12", 1.0),  # the first number after the marker
    ("so the answer is \\boxed{42}. Check: 6*7", "42", 1.0),  # \boxed{} before the last number
    ("\\boxed{41}", "42", 0.0),
    ("72.0", "72", 1.0),
    ("$0.50", "0.5", 1.0),
    ("no number here", "3", 0.0),
])
def test_number_reward(completion, answer, expected):
    assert reward("number", completion, answer) == expected


def test_number_reward_marker_and_extraction():
    assert reward("number", "Answer: 9 (not 10)", "9", marker="Answer:") == 1.0
    assert reward("number", "Answer: 9 (not 10)", "9") == 0.0  # without the marker: the last number, 10
    assert extract_number("\\boxed{\\frac{3}{4}}") == 4.0  # the number reward reads numbers, not fractions
    assert extract_number("cut \\boxed{12") == 12.0  # an unclosed box falls back to the last number


@pytest.mark.parametrize("completion, answer, expected", [
    ("  12 \n", "12", 1.0), ("12.", "12", 0.0), ("12", "Worked: 5 + 7 = 12\n#### 12", 1.0), ("twelve", "12", 0.0),
])
def test_exact_reward_strips_and_reads_the_final_answer(completion, answer, expected):
    assert reward("exact", completion, answer) == expected


@pytest.mark.parametrize("completion, expected", [
    ("Answer: 7", 1.0), ("Answer: 7.0", 1.0), ("Answer: 8", 0.0), ("no answer line", 0.0),
    ("Answer: 3\nwait, Answer: 7", 1.0),  # the last match
])
def test_regex_reward_compares_its_group(completion, expected):
    assert reward("regex", completion, "#### 7", pattern=r"Answer:\s*(\S+)") == expected


def test_final_answer_is_what_follows_the_last_marker():
    assert final_answer("a #### b #### 42 ") == "42"
    assert final_answer(" 3/4 ") == "3/4"


@pytest.mark.parametrize("completion, answer, expected", [
    ("$\\frac{1}{2}$", "0.5", 1.0),
    ("0.5", "\\frac{1}{2}", 1.0),
    ("So the result is \\boxed{\\frac{3}{4}}.", "0.75", 1.0),  # \boxed{} extraction
    ("We try \\boxed{2}", "3", 0.0),
    ("The answer is 1234", "Worked solution\n#### 1,234", 1.0),
    ("$x = 2$", "$2$", 1.0),
])
def test_math_verify_reward(completion, answer, expected):
    pytest.importorskip("math_verify")
    assert reward("math_verify", completion, answer) == expected


def test_math_verify_without_the_package_names_the_extra(monkeypatch):
    real = rewards.importlib.util.find_spec
    monkeypatch.setattr(rewards.importlib.util, "find_spec", lambda n, *a: None if n == "math_verify" else real(n, *a))
    with pytest.raises(ConfigError, match=r"math-verify.*\.\[math\]"):
        make_reward("math_verify")


def length_reward(completion: str, answer: str, scale: float = 1.0) -> float:
    """A plugin reward named by import path."""
    return scale * len(completion)


def test_a_plugin_reward_by_import_path_gets_its_parameters(tmp_path):
    path = write_jsonl(tmp_path / "sums.jsonl", SUMS)
    task = get_task("dataset", path=str(path), reward=f"{__name__}:length_reward", reward_params={"scale": 0.5})
    assert task.score("abcd", "x") == 2.0
    with pytest.raises(ConfigError, match="reward_params.*scale"):
        get_task("dataset", path=str(path), reward=f"{__name__}:length_reward", reward_params={"scal": 1})
    with pytest.raises(ConfigError, match="must take"):
        get_task("dataset", path=str(path), reward="os:getcwd")


# ---- files, splits, prompts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_each_file_format_loads_the_same_rows(tmp_path, suffix):
    frame = pd.DataFrame(GSM8K_ROWS)
    path = tmp_path / f"problems{suffix}"
    {".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     ".json": lambda: frame.to_json(path, orient="records"),
     ".parquet": lambda: frame.to_parquet(path),
     ".csv": lambda: frame.to_csv(path, index=False)}[suffix]()
    task = get_task("dataset", path=str(path), prompt="{question}\nAnswer with the final number.")
    rows = task.train_dataset(seed=0)
    loaded = sorted(zip(rows["prompt"], rows["answer"])) + task.eval_split()
    assert sorted(loaded) == sorted((f"{r['question']}\nAnswer with the final number.", r["answer"]) for r in GSM8K_ROWS)
    assert len(task.eval_split()) == 2  # eval_fraction 0.2 of 10 rows


def test_held_out_split_is_fixed_and_a_second_file_replaces_it(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", GSM8K_ROWS)
    one, two = get_task("dataset", path=str(path)), get_task("dataset", path=str(path))
    assert one.eval_split() == two.eval_split()
    assert set(one.eval_split()).isdisjoint(zip(one.train_dataset(0)["prompt"], one.train_dataset(0)["answer"]))
    assert one.train_dataset(0)["prompt"] != one.train_dataset(1)["prompt"]  # the seed shuffles training order
    held = write_jsonl(tmp_path / "test.jsonl", SUMS[:3])
    task = get_task("dataset", path=str(path), eval_path=str(held))
    assert task.eval_split() == [(r["question"], r["answer"]) for r in SUMS[:3]]
    assert len(task.train_dataset(0)) == len(GSM8K_ROWS)


def test_prompts_reach_a_chat_model_as_system_and_user_messages(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", GSM8K_ROWS)
    task = get_task("dataset", path=str(path), prompt="question", system="Think, then give the number.")
    assert as_prompt(task, "Q?") == "Think, then give the number.\n\nQ?"  # a model without a chat template
    task.chat = True
    messages = chat_dataset(task, task.train_dataset(seed=0))[0]["prompt"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == "Think, then give the number." and messages[1]["content"].startswith("Ann has")
    assert task.reward([[{"role": "assistant", "content": "#### 7"}]], ["... #### 7"]) == [1.0]


def test_report_words_name_the_dataset_and_the_reward():
    assert describe({"path": "data/p.jsonl", "reward": "math_verify"}) == "dataset `data/p.jsonl`, reward `math_verify`"
    assert describe({"path": "openai/gsm8k", "name": "main", "reward": "regex", "reward_params": {"pattern": "(x)"}}) \
        == "dataset `openai/gsm8k` (main, train), reward `regex` (pattern='(x)')"
    # The report's summary reads the sweep's base config (sweep.json's spec); only meta is read.
    sweep = SimpleNamespace(spec=SimpleNamespace(base={"task": "dataset", "task_params": {"path": "p.jsonl"}}))
    assert task_sentence(sweep) == "Task: dataset `p.jsonl`, reward `number`."
    assert task_sentence(SimpleNamespace(spec=SimpleNamespace(base={"task": "arithmetic"}))) == "Task: `arithmetic`."


# ---- bad input: one line naming the key or file, exit 2, nothing created ----------------------------------

def bad_files(tmp_path: Path) -> dict[str, str]:
    write_jsonl(tmp_path / "good.jsonl", GSM8K_ROWS)
    (tmp_path / "empty.jsonl").write_text("")
    write_jsonl(tmp_path / "no_answer.jsonl", [GSM8K_ROWS[0], {"question": "What?", "answer": None}])
    (tmp_path / "broken.jsonl").write_text('{"question": "a", "answer"\n')
    (tmp_path / "notes.txt").write_text("question,answer\n")
    return {k: str(tmp_path / k) for k in ("good.jsonl", "empty.jsonl", "no_answer.jsonl", "broken.jsonl", "notes.txt")}


BAD = [
    ({"path": "{dir}/absent.jsonl"}, ["path", "absent.jsonl", "no such file"]),
    ({"path": "{empty.jsonl}"}, ["path", "empty.jsonl", "no rows"]),
    ({"path": "{broken.jsonl}"}, ["path", "broken.jsonl", "cannot read"]),
    ({"path": "{notes.txt}"}, ["path", "notes.txt", ".jsonl, .json, .parquet or .csv"]),
    ({"path": "{good.jsonl}", "prompt": "problem"}, ["prompt", "'problem'", "its fields: question, answer"]),
    ({"path": "{good.jsonl}", "answer": "solution"}, ["answer", "'solution'", "its fields: question, answer"]),
    ({"path": "{good.jsonl}", "prompt": "{question} in {units}"}, ["prompt", "'units'", "its fields: question, answer"]),
    ({"path": "{good.jsonl}", "prompt": "Put it in \\boxed{}"}, ["prompt", "{{ and }}"]),
    ({"path": "{no_answer.jsonl}"}, ["answer", "row 2", "no_answer.jsonl"]),
    ({"path": "workbench-tests/no-such-dataset"}, ["path", "HF_HUB_OFFLINE=1", "local", ".jsonl"]),
    ({"path": "{good.jsonl}", "eval_path": "{dir}/absent.jsonl"}, ["eval_path", "absent.jsonl"]),
    ({"path": "{good.jsonl}", "reward": "nope"}, ["reward", "'nope'", "exact, math_verify, number, regex"]),
    ({"path": "{good.jsonl}", "reward": "regex", "reward_params": {"pattern": "Answer: \\S+"}}, ["pattern", "one group"]),
    ({"path": "{good.jsonl}", "reward": "number", "reward_params": {"mark": "##"}}, ["reward_params", "marker"]),
    ({"path": "{good.jsonl}", "reward": "no_such_module:fn"}, ["reward", "no_such_module"]),
    ({"path": "{good.jsonl}", "pth": "x"}, ["unknown parameter 'pth'", "path, name, split"]),
    ({}, ["path", "required"]),
]


def run_cli(tmp_path: Path, task_params: dict) -> tuple[int, str]:
    files = bad_files(tmp_path)
    text = json.dumps(task_params).replace("{dir}", str(tmp_path))
    for name, path in files.items():
        text = text.replace("{" + name + "}", path)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"task": "dataset", "task_params": json.loads(text),
                                   "output_dir": str(tmp_path / "runs"), "tracking": {"wandb_mode": "disabled"}}))
    result = CliRunner().invoke(app, ["run", str(cfg)])
    return result.exit_code, result.stderr


@pytest.mark.parametrize("task_params, needles", BAD)
def test_bad_input_through_the_cli_is_one_line_exit_2_and_creates_nothing(tmp_path, task_params, needles):
    code, stderr = run_cli(tmp_path, task_params)
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()


def test_math_verify_missing_through_the_cli(tmp_path, monkeypatch):
    real = rewards.importlib.util.find_spec
    monkeypatch.setattr(rewards.importlib.util, "find_spec", lambda n, *a: None if n == "math_verify" else real(n, *a))
    code, stderr = run_cli(tmp_path, {"path": "{good.jsonl}", "reward": "math_verify"})
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "pip install -e '.[math]'" in stderr, stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.launch
def test_a_missing_field_in_a_real_process(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", GSM8K_ROWS)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"task": "dataset", "task_params": {"path": "p.jsonl", "answer": "final"},
                                   "output_dir": "runs"}))
    proc = subprocess.run([sys.executable, "-m", "workbench", "run", str(cfg)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("error: task_params for 'dataset': answer: no field 'final' in p.jsonl "
                                   "(its fields: question, answer)")
    assert not (tmp_path / "runs").exists()


# ---- a real run ---------------------------------------------------------------------------------------------

def test_two_steps_of_the_tiny_policy_on_a_dataset_task(tmp_path, monkeypatch):
    # A short warm start (its own cache entry: the key holds the settings): the run is under test, not the teacher.
    monkeypatch.setitem(policy_load.WARM_START, "steps", 50)
    path = write_jsonl(tmp_path / "sums.jsonl", SUMS)
    result = tiny_run(tmp_path / "runs", task="dataset",
                      task_params={"path": str(path), "prompt": "{question}=", "reward": "exact"})
    summary = result.summary
    assert summary["status"] == "finished", summary.get("failure")
    assert 0.0 <= summary["eval"]["eval/accuracy"] <= 1.0
    steps = [json.loads(line) for line in (result.run_dir / "scalars.jsonl").read_text().splitlines()]
    assert any("reward/mean" in s for s in steps)
