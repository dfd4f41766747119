"""BIG-bench (the `bigbench==1.0.0` sdist, 358 MB): reading its tasks' task.json files.

The BIG-bench datasets are registered by bigbench_entailment.py, bigbench_choice.py and xsum.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Sequence

from gpt_exp.data.cache import Package, extract_members

BIGBENCH = Package("pypi", "bigbench", "1.0.0")
BIGBENCH_TASKS = "bigbench/benchmark_tasks"


def bigbench_member(task: str) -> str:
    return f"{BIGBENCH_TASKS}/{task}/task.json"


def bigbench_examples(archive: Path, tasks: Sequence[str]) -> Dict[str, dict]:
    """task -> its task.json; one streaming pass over the 358 MB sdist that stops at the last task needed."""
    members = extract_members(archive, [bigbench_member(task) for task in tasks])
    return {task: json.loads(members[bigbench_member(task)]) for task in tasks}


def single_best(scores: Sequence[Any]) -> int | None:
    """Index of the one choice with the top positive score, None if there is not exactly one."""
    if not scores or not all(isinstance(score, (int, float)) for score in scores):
        return None
    best = max(scores)
    winners = [index for index, score in enumerate(scores) if score == best]
    return winners[0] if best > 0 and len(winners) == 1 else None
