"""Read back a W&B offline run file (run-<id>.wandb): the tests check what W&B would sync.

The file is a ':W&B' header (7 bytes) followed by LevelDB-log framed protobuf ``Record``s in
32 KiB blocks: each fragment has a 4-byte checksum, a 2-byte length and a 1-byte type
(1 full, 2 first, 3 middle, 4 last).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = 7


def records(path: Path) -> Iterator[Any]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        length = int.from_bytes(data[pos + 4:pos + 6], "little")
        kind = data[pos + 6]
        if pos + HEADER + length > len(data):  # a record still being written
            return
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0:
            continue
        pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def history(path: Path) -> list[dict[str, Any]]:
    """Every history row logged to the run, values decoded from their JSON."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({(item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def run_info(path: Path) -> dict[str, Any]:
    """The run record: its config (decoded), job type and group."""
    for record in records(path):
        if record.WhichOneof("record_type") == "run":
            run = record.run
            config = {item.key: json.loads(item.value_json) for item in run.config.update}
            return {"config": config, "job_type": run.job_type, "group": run.run_group}
    raise AssertionError(f"{path} holds no run record")


def run_file(run_dir: Path, timeout: float = 60.0) -> Path:
    """The single run-*.wandb file under a run folder, once W&B has written its exit record.

    wandb-core writes the file from its own process and `finish()` can return before the last
    records reach the disk, so a reader that does not wait sees a run with no history.
    """
    found = sorted(Path(run_dir).glob("wandb/*run-*/run-*.wandb"))
    assert len(found) == 1, f"expected one W&B run file under {run_dir}, found {found}"
    deadline = time.monotonic() + timeout
    while not any(r.WhichOneof("record_type") == "exit" for r in records(found[0])):
        assert time.monotonic() < deadline, f"{found[0]} has no exit record after {timeout} s"
        time.sleep(0.2)
    return found[0]
