"""Rotten Tomatoes movie-review snippets with mean ratings (the source of SST), from the vaderSentiment==3.3.2 sdist."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from gpt_exp.data.cache import Package, extract_member
from gpt_exp.data.sources.helpers import (HASH_SPLIT_RULE, SENTIMENT_LABELS, built_from_groups, non_blank_lines,
                                          split_by_hash, squash)
from gpt_exp.data.sources.registry import Built, register_dataset
from gpt_exp.text import parse_number

VADER = Package("pypi", "vaderSentiment", "3.3.2")
VADER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
MOVIE_REVIEWS = "movieReviewSnippets_GroundTruth.txt"


@register_dataset(
    "movie_reviews", package=VADER, member=f"{VADER_ARCHIVE}!/hutto_ICWSM_2014/{MOVIE_REVIEWS}",
    description="Rotten Tomatoes movie-review snippets (the source of SST) with positive/negative labels from "
                "mean ratings",
    rules="tab-separated id/score/text, whitespace squashed; label 1 if score > 0, 0 if < 0, score 0 dropped; "
          f"{HASH_SPLIT_RULE} the text",
    label_names=SENTIMENT_LABELS)
def build_movie_reviews(archive: Path) -> Built:
    inner = extract_member(archive, VADER_ARCHIVE)
    keyed, dropped = [], Counter()
    # UTF-8 (clichés, Jirí), CRLF line ends; the snippets use runs of spaces where dashes were.
    for line in non_blank_lines(extract_member(inner, MOVIE_REVIEWS)):
        fields = line.split("\t")
        score = parse_number(fields[1]) if len(fields) == 3 else None
        snippet = squash(fields[-1])
        if score is None or not snippet:
            dropped["malformed"] += 1
        elif score == 0:
            dropped["neutral_score"] += 1
        else:
            keyed.append((snippet, {"text": snippet, "label": int(score > 0)}))
    return built_from_groups(split_by_hash(keyed, held_out=0.1), dropped)
