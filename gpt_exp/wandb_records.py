"""Read an offline W&B run file (`run-*.wandb`) without a server.

The file is a LevelDB-style log of protobuf `Record`s: a 7-byte header, then 32 KiB blocks of
chunks, each with a 7-byte header (checksum, length, type) and FULL / FIRST / MIDDLE / LAST
pieces of one record. Used by `gpt_exp.resume` (a resumed run replaces its offline records) and by the tests to check what W&B received.
"""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path

BLOCK = 32 * 1024
FILE_HEADER = 7
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def iter_records(path: str | Path):
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, pieces = FILE_HEADER, []
    while pos + CHUNK_HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < CHUNK_HEADER:  # a block's tail too short for a header is padding
            pos += room
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + CHUNK_HEADER])
        chunk = data[pos + CHUNK_HEADER:pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind == 0 and length == 0:
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
            continue
        if kind in (FULL, FIRST):
            pieces = [chunk]
        else:
            pieces.append(chunk)
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(pieces))
            yield record


def read_run(path: str | Path) -> dict:
    """{'history': [row, ...], 'summary': {...}, 'config': {...}, 'exit_code': int | None, 'name': str}."""
    out = {"history": [], "summary": {}, "config": {}, "exit_code": None, "name": None}
    for record in iter_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            out["summary"].update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "config":
            out["config"].update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "run":
            out["name"] = record.run.display_name
            out["config"].update({_key(i): json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_finished_run(run_dir: str | Path, timeout: float = 60.0) -> dict:
    """`read_run` of the run's file once W&B has written its exit record.

    `run.finish()` can return while W&B's service is still writing the file (seen 2 in 30 runs), so a
    reader that does not wait can miss the last history rows, a table or the summary.
    """
    deadline = time.monotonic() + timeout
    while True:
        path = find_run_file(run_dir)
        run = read_run(path) if path is not None else None
        if run is not None and run["exit_code"] is not None:
            return run
        if time.monotonic() > deadline:
            found = f"{path} has no exit record" if path is not None else "no run file"
            raise TimeoutError(f"no finished W&B run under {run_dir}/wandb after {timeout:.0f} s ({found})")
        time.sleep(0.2)


def find_run_file(run_dir: str | Path) -> Path | None:
    files = sorted(Path(run_dir).glob("wandb/*run-*/run-*.wandb"))
    return files[-1] if files else None
