"""BIG-bench entailment tasks as {premise, hypothesis, label}: vitaminc, epistemic_reasoning, presuppositions_as_nli."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Callable, Tuple

from gpt_exp.data.sources.bigbench import BIGBENCH, bigbench_examples, bigbench_member, single_best
from gpt_exp.data.sources.helpers import HASH_SPLIT_RULE, built_from_groups, split_by_hash, squash
from gpt_exp.data.sources.registry import Built, Record, register_dataset

GroupKey = Callable[[dict, Record], str]   # (source example, record) -> the key that keeps its variants together


def build_entailment(archive: Path, task: str, pattern: re.Pattern, label_names: Tuple[str, ...],
                     group_key: GroupKey) -> Built:
    """Records of a BIG-bench task whose input `pattern` matches (named groups premise and hypothesis) and
    whose target_scores, keyed exactly `label_names`, have one winner."""
    keyed, dropped = [], Counter()
    for example in bigbench_examples(archive, [task])[task]["examples"]:
        text, scores = example.get("input"), example.get("target_scores") or {}
        match = pattern.match(text) if isinstance(text, str) else None
        label = single_best(list(scores.values())) if tuple(scores) == label_names else None
        if not match or label is None:
            dropped["unparsed"] += 1
            continue
        record = {"premise": squash(match["premise"]), "hypothesis": squash(match["hypothesis"]), "label": label}
        if not record["premise"] or not record["hypothesis"]:
            dropped["empty"] += 1
            continue
        try:
            keyed.append((group_key(example, record), record))
        except (KeyError, TypeError):   # e.g. an example without the comment its group key is read from
            dropped["unparsed"] += 1
    return built_from_groups(split_by_hash(keyed, held_out=0.1), dropped)


VITAMINC_LABELS = ("True", "False", "Neither")
_VITAMINC_INPUT = re.compile(r"^(?P<premise>.+)\nClaim: (?P<hypothesis>.+)$", re.S)


@register_dataset(
    "vitaminc", package=BIGBENCH, member=bigbench_member("vitaminc_fact_verification"),
    description="BIG-bench vitaminc_fact_verification: does a Wikipedia passage support a claim (True/False/Neither)",
    rules="premise = input before '\\nClaim: ' (it starts with the Wikipedia page title), hypothesis = the claim, "
          f"label = the target_scores key scored 1; {HASH_SPLIT_RULE} the claim (its evidence variants share a split)",
    label_names=VITAMINC_LABELS)
def build_vitaminc(archive: Path) -> Built:
    return build_entailment(archive, "vitaminc_fact_verification", _VITAMINC_INPUT, VITAMINC_LABELS,
                            group_key=lambda example, record: record["hypothesis"])


EPISTEMIC_LABELS = ("entailment", "non-entailment")
_EPISTEMIC_INPUT = re.compile(r"^Premise: (?P<premise>.+?) Hypothesis: (?P<hypothesis>.+)$", re.S)


@register_dataset(
    "epistemic_reasoning", package=BIGBENCH, member=bigbench_member("epistemic_reasoning"),
    description="BIG-bench epistemic_reasoning: entailment between sentences about beliefs and knowledge",
    rules="input 'Premise: ... Hypothesis: ...', label = the target_scores key scored 1; "
          f"{HASH_SPLIT_RULE} the premise",
    label_names=EPISTEMIC_LABELS)
def build_epistemic_reasoning(archive: Path) -> Built:
    return build_entailment(archive, "epistemic_reasoning", _EPISTEMIC_INPUT, EPISTEMIC_LABELS,
                            group_key=lambda example, record: record["premise"])


PRESUPPOSITION_LABELS = ("entailment", "neutral", "contradiction")
_PRESUPPOSITION_INPUT = re.compile(r"^Sentence 1: (?P<premise>.+?)\s*\nSentence 2: (?P<hypothesis>.+?)\s*"
                                   r"(\n\nThe answer is:\s*)?$", re.S)


@register_dataset(
    "presuppositions_as_nli", package=BIGBENCH, member=bigbench_member("presuppositions_as_nli"),
    description="BIG-bench presuppositions_as_nli: entailment / neutral / contradiction of a sentence's "
                "presupposition",
    rules="input 'Sentence 1: ...\\nSentence 2: ...', label = the target_scores key scored 1; "
          f"{HASH_SPLIT_RULE} comment.example_id (its negated/adversarial variants share a split)",
    label_names=PRESUPPOSITION_LABELS)
def build_presuppositions_as_nli(archive: Path) -> Built:
    return build_entailment(archive, "presuppositions_as_nli", _PRESUPPOSITION_INPUT, PRESUPPOSITION_LABELS,
                            group_key=lambda example, record: str(example["comment"]["example_id"]))
