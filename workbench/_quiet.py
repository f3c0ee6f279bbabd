"""Silence one notice the user cannot act on: transformers prints "[INFO] Running in WANDB offline mode" to
stdout whenever its W&B integration is imported with WANDB_MODE=offline, i.e. in every command that trains,
before every error message. That one module is imported with stdout discarded; nothing else is touched."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from importlib.abc import MetaPathFinder

NOISY = "transformers.integrations.integration_utils"


class QuietImport(MetaPathFinder):
    def find_spec(self, name, path, target=None):  # noqa: ANN001 - importlib's protocol
        if name != NOISY:
            return None
        sys.meta_path.remove(self)  # once, and without finding itself again below
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_quietly(module) -> None:  # noqa: ANN001
            with contextlib.redirect_stdout(io.StringIO()):
                execute(module)

        spec.loader.exec_module = exec_quietly
        return spec


def install() -> None:
    if NOISY not in sys.modules and not any(isinstance(f, QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, QuietImport())
