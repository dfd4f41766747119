"""BIG-bench gem/xsum: BBC articles with their one-sentence summaries, as {article, summarization}."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from gpt_exp.data.sources.bigbench import BIGBENCH, bigbench_examples, bigbench_member
from gpt_exp.data.sources.helpers import HASH_SPLIT_RULE, built_from_groups, split_by_hash, squash, tidy
from gpt_exp.data.sources.registry import Built, register_dataset


@register_dataset(
    "xsum", package=BIGBENCH, member=bigbench_member("gem/xsum"),
    description="BIG-bench gem/xsum: BBC articles with their one-sentence summaries",
    rules="article = input (line breaks kept), summarization = target; pairs whose summary is not shorter than the "
          f"article dropped; {HASH_SPLIT_RULE} the article")
def build_xsum(archive: Path) -> Built:
    keyed, dropped = [], Counter()
    for example in bigbench_examples(archive, ["gem/xsum"])["gem/xsum"]["examples"]:
        article, summary = example.get("input"), example.get("target")
        if not isinstance(article, str) or not isinstance(summary, str) or not article.strip() or not summary.strip():
            dropped["unparsed"] += 1
        elif len(squash(summary)) >= len(tidy(article)):
            dropped["summary_not_shorter"] += 1   # one XSum article is only its first sentence
        else:
            keyed.append((article, {"article": tidy(article), "summarization": squash(summary)}))
    return built_from_groups(split_by_hash(keyed, held_out=0.1), dropped)
