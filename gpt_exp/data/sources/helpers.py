"""What the source modules share: the split by hash, whitespace clean-up, reading lines.

Splits: sets that ship their own (STS-B) keep them. The others go through `split_by_hash`: records
sharing a group key (a play's two editions, a news item's paragraphs, a claim's evidence variants)
stay together, groups are ranked by the sha256 of their key and the ranking is cut at the split
sizes. That is deterministic, independent of file order and exact even for small sets, and the
ranking doubles as a fixed shuffle, so the first N records of a split already mix the labels.
"""
from __future__ import annotations

from collections import Counter
from typing import Dict, Iterable, List, Tuple, TypeVar

from gpt_exp.data import SPLITS
from gpt_exp.data.cache import sha256_hex
from gpt_exp.data.sources.registry import Built

T = TypeVar("T")
Grouped = Dict[str, List[List[T]]]  # split -> groups -> members

HASH_SPLIT_RULE = "split 80/10/10 by sha256 rank of"   # + what the groups are keyed by (in a dataset's rules)
SENTIMENT_LABELS = ("negative", "positive")            # label 0 and 1 of the review sets


def split_by_hash(keyed: Iterable[Tuple[str, T]], held_out: float) -> Grouped:
    """{split: [group, ...]} from (group key, item) pairs; validation and test get `held_out` of the groups each."""
    groups: Dict[str, List[T]] = {}
    for key, item in keyed:
        groups.setdefault(key, []).append(item)
    ranked = sorted(groups, key=sha256_hex)
    n_held = max(1, round(len(ranked) * held_out))
    cuts = {"validation": ranked[:n_held], "test": ranked[n_held:2 * n_held], "train": ranked[2 * n_held:]}
    return {split: [groups[key] for key in cuts[split]] for split in SPLITS}


def built_from_groups(grouped: Grouped, dropped: Counter | None = None) -> Built:
    """The records of `split_by_hash`'s groups, flattened, with the number of groups per split."""
    return Built(splits={split: [record for group in groups for record in group] for split, groups in grouped.items()},
                 groups={split: len(groups) for split, groups in grouped.items()},
                 dropped=dict(dropped or {}))


def squash(text: str) -> str:
    """Whitespace runs (tabs, newlines, the source's runs of spaces) become one space."""
    return " ".join(text.split())


def tidy(text: str) -> str:
    """Line breaks kept (CRLF -> LF), trailing spaces and surrounding blank lines removed."""
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def non_blank_lines(data: bytes) -> List[str]:
    """The non-blank lines of a UTF-8 file. Only \\n ends a line: str.splitlines() would also break at
    U+2028 and other separators that can occur inside a record."""
    return [line.rstrip("\r") for line in data.decode("utf-8").split("\n") if line.strip()]
