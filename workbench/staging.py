"""Folders built beside their destination and renamed into place, so a reader never finds half of one.

The staging folder of ``dest`` is ``.NAME.building-<pid>`` in the same parent (a rename within one
filesystem is atomic). A builder killed with -9 cannot remove its own: every later build removes those
whose process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import psutil


def staging_folder(dest: Path) -> Path:
    """A fresh, empty staging folder for ``dest`` (its parent is created), after removing stale ones."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(dest)
    tmp = dest.parent / f".{dest.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def remove_stale(dest: Path) -> list[Path]:
    """Remove the leftovers (``.NAME.building-<pid>``, ``.NAME.old-<pid>``) of builders that died; the ones removed."""
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.(building|old)-(\d+)")
    removed = []
    for path in dest.parent.glob(f".{dest.name}.*-*"):
        match = pattern.fullmatch(path.name)
        if match and not psutil.pid_exists(int(match.group(2))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
