"""Truncation strategies at their boundaries: too long, exactly full, short."""
import pytest
from omegaconf import OmegaConf

from gpt_exp.truncation import pair_lengths, truncate, truncate_pair

IDS = list(range(10))


@pytest.mark.parametrize("strategy,expected", [
    ("head", [0, 1, 2, 3]), ("tail", [6, 7, 8, 9]), ("head_tail", [0, 1, 8, 9])])
def test_too_long(strategy, expected):
    assert truncate(IDS, 4, strategy) == expected


@pytest.mark.parametrize("strategy", ["head", "tail", "head_tail"])
def test_exactly_full_and_short_are_untouched(strategy):
    assert truncate(IDS, 10, strategy) == IDS
    assert truncate(IDS[:3], 10, strategy) == IDS[:3]


def test_head_tail_fraction_and_zero_budget():
    assert truncate(IDS, 5, "head_tail", head_fraction=0.8) == [0, 1, 2, 3, 9]
    assert truncate(IDS, 0, "tail") == [] and truncate(IDS, 0, "head_tail") == []


def test_unknown_strategy_names_the_key():
    with pytest.raises(ValueError, match="truncation.strategy"):
        truncate(IDS, 3, "middle")


@pytest.mark.parametrize("lengths,budget,rule,expected", [
    ((10, 2), 8, "longest_first", (6, 2)),
    ((2, 10), 8, "longest_first", (2, 6)),
    ((10, 9), 10, "longest_first", (5, 5)),
    ((10, 9), 11, "longest_first", (6, 5)),
    ((10, 9), 19, "longest_first", (10, 9)),
    ((10, 9), 5, "first", (0, 5)),
    ((10, 9), 12, "first", (3, 9)),
    ((10, 9), 12, "second", (10, 2)),
])
def test_pair_lengths(lengths, budget, rule, expected):
    kept = pair_lengths(*lengths, budget, rule)
    assert kept == expected and sum(kept) == min(budget, sum(lengths))


def test_truncate_pair_uses_the_strategy_on_each_side():
    cfg = OmegaConf.create({"strategy": "tail", "pairs": "longest_first", "head_fraction": 0.5})
    a, b = truncate_pair(list(range(10)), [100, 101], 6, cfg)
    assert a == [6, 7, 8, 9] and b == [100, 101]
