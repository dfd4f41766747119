"""The truncation group: how a too-long text (or pair of texts) is cut to a token budget.

`strategy` says which part of a text is kept: `head` (cut the end), `tail` (cut the beginning),
`head_tail` (keep both ends, cut the middle; `head_fraction` of the budget goes to the head).
For two texts, `pairs` says which one gives up tokens: `longest_first` (the longer one, token by
token, as Hugging Face tokenizers do), `first` or `second` (that side only, then the other).
Special tokens are not part of the budget the caller passes, so they are never cut.
"""
from __future__ import annotations

STRATEGIES = ("head", "tail", "head_tail")
PAIR_RULES = ("longest_first", "first", "second")


def truncate(ids: list[int], budget: int, strategy: str = "head", head_fraction: float = 0.5) -> list[int]:
    if strategy not in STRATEGIES:
        raise ValueError(f"truncation.strategy={strategy!r}: use one of {', '.join(STRATEGIES)}")
    budget = max(0, budget)
    if len(ids) <= budget:
        return list(ids)
    if strategy == "head":
        return list(ids[:budget])
    if strategy == "tail":
        return list(ids[len(ids) - budget:]) if budget else []
    head = int(round(budget * head_fraction))
    tail = budget - head
    return list(ids[:head]) + (list(ids[len(ids) - tail:]) if tail else [])


def pair_lengths(len_a: int, len_b: int, budget: int, rule: str = "longest_first") -> tuple[int, int]:
    """How many tokens of each text are kept."""
    if rule not in PAIR_RULES:
        raise ValueError(f"truncation.pairs={rule!r}: use one of {', '.join(PAIR_RULES)}")
    budget = max(0, budget)
    excess = len_a + len_b - budget
    if excess <= 0:
        return len_a, len_b
    if rule == "first":
        keep_a = max(0, len_a - excess)
        return keep_a, min(len_b, budget - keep_a)
    if rule == "second":
        keep_b = max(0, len_b - excess)
        return min(len_a, budget - keep_b), keep_b
    # longest_first: cut the longer side until both are equal, then share the cut
    shorter = min(len_a, len_b)
    keep_longer = max(shorter, budget - shorter) if budget >= 2 * shorter else budget - budget // 2
    keep_shorter = budget - keep_longer
    return (keep_longer, keep_shorter) if len_a >= len_b else (keep_shorter, keep_longer)


def truncate_pair(a: list[int], b: list[int], budget: int, truncation) -> tuple[list[int], list[int]]:
    """Cut two texts to fit `budget` together, following the truncation config."""
    keep_a, keep_b = pair_lengths(len(a), len(b), budget, truncation.get("pairs", "longest_first"))
    strategy, fraction = truncation.get("strategy", "head"), truncation.get("head_fraction", 0.5)
    return truncate(a, keep_a, strategy, fraction), truncate(b, keep_b, strategy, fraction)
