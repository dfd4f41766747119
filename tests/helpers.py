"""Helpers several test files share that the package itself does not need."""
from __future__ import annotations

import json
from pathlib import Path


def read_checkpoint_record(path: Path) -> dict:
    """A checkpoint's record (step, best, wandb id, ...) alone, without restoring anything."""
    import mindspore

    return json.loads(str(mindspore.load_checkpoint(str(path), choice_func=lambda n: n == "record")["record"]))
