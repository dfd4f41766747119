"""BIG-bench multiple-choice tasks as {context, choices, label}: social_iqa, goal_step_wikihow, cause_and_effect."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

from gpt_exp.data.cache import sha256_hex
from gpt_exp.data.sources.bigbench import BIGBENCH, bigbench_examples, bigbench_member, single_best
from gpt_exp.data.sources.helpers import HASH_SPLIT_RULE, built_from_groups, split_by_hash, squash
from gpt_exp.data.sources.registry import Built, register_dataset

CHOICE_RULES = ("choices ordered by sha256 of their text, label = index of the choice with the top score; "
                f"rows without exactly one top-scored choice dropped; {HASH_SPLIT_RULE}")


def build_multiple_choice(archive: Path, tasks: Sequence[str], n_choices: int, group_by_index: bool) -> Built:
    """Records of the examples of `tasks` with exactly `n_choices` choices and one top-scored one; grouped for
    the split by the context, or by the example's index (the same event told by several subtasks)."""
    keyed, dropped = [], Counter()
    for content in bigbench_examples(archive, tasks).values():
        for index, example in enumerate(content["examples"]):
            # cause_and_effect leaves `input` empty: its question is the subtask's task_prefix
            context = squash(example.get("input", "")) or squash(content.get("task_prefix", ""))
            scores = example.get("target_scores") or {}
            # the source lists choices in a fixed order (cause_and_effect always puts the answer first):
            # order them by hash instead, a shuffle that is the same on every machine
            choices = sorted(scores, key=sha256_hex)
            label = single_best([scores[choice] for choice in choices])
            if not context or label is None:
                dropped["unparsed"] += 1
            elif len(choices) != n_choices:
                dropped[f"not_{n_choices}_choices"] += 1
            else:
                record = {"context": context, "choices": [squash(choice) for choice in choices], "label": label}
                keyed.append((str(index) if group_by_index else context, record))
    return built_from_groups(split_by_hash(keyed, held_out=0.1), dropped)


@register_dataset(
    "social_iqa", package=BIGBENCH, member=bigbench_member("social_iqa"),
    description="BIG-bench social_iqa: commonsense questions about people's motives and reactions, 3 choices",
    rules=f"context = input; rows with other than 3 choices dropped; {CHOICE_RULES} the context")
def build_social_iqa(archive: Path) -> Built:
    return build_multiple_choice(archive, ["social_iqa"], n_choices=3, group_by_index=False)


@register_dataset(
    "goal_step_wikihow", package=BIGBENCH, member=bigbench_member("goal_step_wikihow/{goal_inference,step_inference}"),
    description="BIG-bench goal_step_wikihow (goal_inference + step_inference): pick the goal or step, 4 choices",
    rules=f"context = input; step_ordering (2 choices) and rows with other than 4 choices left out; {CHOICE_RULES} "
          "the context")
def build_goal_step_wikihow(archive: Path) -> Built:
    return build_multiple_choice(archive, ["goal_step_wikihow/goal_inference", "goal_step_wikihow/step_inference"],
                                 n_choices=4, group_by_index=False)


@register_dataset(
    "cause_and_effect", package=BIGBENCH, member=bigbench_member("cause_and_effect/{one_sentence,two_sentences}"),
    description="BIG-bench cause_and_effect (one_sentence + two_sentences): which sentence states the cause, "
                "2 choices",
    rules="context = the subtask's task_prefix (the inputs are empty); one_sentence_no_prompt left out (it repeats "
          f"one_sentence); {CHOICE_RULES} the example index, so the two subtasks' versions of one event pair "
          "(example i of each) share a split: 51 pairs -> 41/5/5 pairs, 82/10/10 records")
def build_cause_and_effect(archive: Path) -> Built:
    return build_multiple_choice(archive, ["cause_and_effect/one_sentence", "cause_and_effect/two_sentences"],
                                 n_choices=2, group_by_index=True)
