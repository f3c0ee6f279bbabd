"""No network here: the hub is offline, W&B writes offline runs, TRL's experimental notice is silenced.

`make test` runs the suite on two pytest-xdist workers (``-n 2 --dist loadgroup``). Each worker then takes its
share of the CPUs as torch threads (two workers do not oversubscribe two cores; subprocesses inherit it), and
tests that share an expensive fixture of this folder (module- or session-scoped: a launched sweep, a report, a
PostgreSQL server, a two-process gradient) go to one worker as one group, which builds it once.

The groups travel from the workers (which know the fixtures) to the controller's scheduler in a file: xdist's
own loadgroup renames node ids, which pytest 9.2 ignores (pytest-xdist#1386), so that its groups silently
split. ``xdist_group`` marks written in a test module are honoured the same way.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
# Helpers shared by the test modules (runs.py, wandb_files.py) import by name, in subprocesses too.
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

# Set before torch is first imported (the test modules import it), so that OpenMP reads it too.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = str(max(1, len(os.sched_getaffinity(0)) // _WORKERS))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, _THREADS)

    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

GROUPS_FILE = "WORKBENCH_TEST_GROUPS"  # environment variable: where the workers write {node id: group}


def _shared_fixtures(item: pytest.Item) -> list[str]:
    """Keys of the non-function-scoped fixtures of tests/ that ``item`` uses: one key per instance pytest builds."""
    keys = [str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")]
    for name in item.fixturenames:
        defs = item._fixtureinfo.name2fixturedefs.get(name)
        if not defs or defs[-1].scope == "function":
            continue
        fixture = defs[-1]
        try:
            source = Path(inspect.getfile(fixture.func)).resolve()
        except TypeError:
            continue
        if not source.is_relative_to(TESTS):
            continue  # pytest's own (tmp_path_factory) and plugins'
        if fixture.scope == "session":
            keys.append(f"{source.relative_to(TESTS).with_suffix('')}.{name}")
        else:  # module (or class, package) scope: one instance per test module that uses it
            keys.append(item.nodeid.split("::")[0].removeprefix("tests/").removesuffix(".py"))
    return keys


def fixture_groups(items: list[pytest.Item]) -> dict[str, str]:
    """{node id: group} for the tests linked, directly or through each other, by a shared fixture instance."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    first = {}
    for item in items:
        keys = _shared_fixtures(item)
        for key in keys[1:]:
            parent[root(key)] = root(keys[0])
        if keys:
            first[item.nodeid] = keys[0]
    return {nodeid: root(key).replace("/", ".") for nodeid, key in first.items()}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook appends group names to the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    path = os.environ.get(GROUPS_FILE)
    if not path or not config.getoption("loadgroup", default=False):
        return
    staging = Path(f"{path}.{os.getpid()}")
    staging.write_text(json.dumps(fixture_groups(items)))
    os.replace(staging, path)  # every worker writes the same groups


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") is None and config.getoption("dist", default="no") == "loadgroup":
        fd, path = tempfile.mkstemp(prefix="workbench-test-groups-", suffix=".json")
        os.close(fd)
        os.environ[GROUPS_FILE] = path  # the workers start after this and inherit it
        config.add_cleanup(lambda: Path(path).unlink(missing_ok=True))


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getoption("dist") != "loadgroup" or not os.environ.get(GROUPS_FILE):
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FixtureGroupScheduling(LoadGroupScheduling):
        """loadgroup whose groups are read from the workers' file (read once, when scheduling starts)."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                text = Path(os.environ[GROUPS_FILE]).read_text()
                self.groups = json.loads(text) if text else {}
            return self.groups.get(nodeid) or super()._split_scope(nodeid)

    return FixtureGroupScheduling(config, log)
