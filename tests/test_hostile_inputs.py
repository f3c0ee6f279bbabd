"""Inputs a hostile user tries (issue 21, item 6): each is one line naming the field or file, exit status 2, no
traceback, nothing created."""

from __future__ import annotations

import json

import pytest
from runs import TINY
from typer.testing import CliRunner

from workbench.cli import app


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps({**TINY, "output_dir": str(tmp_path / "out" / "runs")}))
    return path


def test_a_binary_run_or_sweep_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SWEEPS", str(tmp_path / "sweeps"))
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01")
    for command in (["run", str(binary)], ["sweep", "launch", str(binary)]):
        line = one_line_error(CliRunner().invoke(app, command))
        assert str(binary) in line and "not a text file" in line
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize("override,field", [
    ("seed=99999999999999999999", "seed"),
    ("learning_rate=.inf", "learning_rate"),
    ("temperature=.inf", "temperature"),
    ("learning_rate=.nan", "learning_rate"),
    ("name=../../escape", "name"),
    ("name={tmp}/escape", "name"),
    ("name=..", "name"),
])
def test_out_of_range_values_and_escaping_names_are_one_line(config, tmp_path, override, field):
    override = override.format(tmp=tmp_path)
    line = one_line_error(CliRunner().invoke(app, ["run", str(config), "--set", override]))
    assert line.startswith(f"error: {config}: {field}"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]  # no run folder, in output_dir or elsewhere


@pytest.fixture
def full_disk(tmp_path):
    """A 3 MB tmpfs filled to its last few kilobytes (root only: mounting needs it)."""
    import os
    import subprocess

    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)]).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        with open(folder / "filler", "wb") as f:
            f.write(b"\0" * (os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize - 12 * 1024))
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.slow
def test_a_full_disk_under_wandb_offline_is_one_line_and_nothing_else(tmp_path, full_disk):
    import os
    import subprocess
    import sys

    config = tmp_path / "run.yaml"
    config.write_text(json.dumps({**TINY, "output_dir": str(full_disk / "runs"),
                                  "tracking": {**TINY["tracking"], "wandb_mode": "offline"}}))
    done = subprocess.run([sys.executable, "-m", "workbench", "run", str(config)], capture_output=True, text=True,
                          env={**os.environ, "WANDB_MODE": "offline"}, timeout=600)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], done.stdout + done.stderr
