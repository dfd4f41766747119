"""ROUGE-1 / ROUGE-2 / ROUGE-L F1 through Google's `rouge-score`, with the token unit made explicit.

- `char`: every character that is not whitespace, after NFKC normalisation (full-width `３００`
  becomes `300`) and lower-casing, is one token. This is the usual LCSTS / NLPCC convention: Chinese
  has no spaces, and scoring words would make the number depend on a word segmenter. rouge-score's
  own tokenizer keeps only [a-z0-9] and would score every Chinese text as empty.
- `word`: rouge-score's own tokenizer (lower-cased alphanumeric words, Porter-stemmed), the usual
  setting for English (XSum, CNN/DailyMail).

Scores are F1 x 100, the scale papers print (ROUGE-L 35.2, not 0.352), in the logs, summary.json,
the tables and the docs alike. A corpus score is the mean of the per-sample values (what LCSTS
papers report). An empty prediction scores 0.
"""
from __future__ import annotations

import unicodedata

from rouge_score import rouge_scorer, tokenizers

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
TOKEN_UNITS = ("char", "word")
SCALE = 100.0  # F1 in percent, as papers print it


class CharTokenizer(tokenizers.Tokenizer):
    """Characters as tokens, after NFKC and lower-casing; whitespace is dropped."""

    def tokenize(self, text: str) -> list[str]:
        return [ch for ch in unicodedata.normalize("NFKC", text).lower() if not ch.isspace()]


def make_scorer(unit: str = "char") -> rouge_scorer.RougeScorer:
    if unit not in TOKEN_UNITS:
        raise ValueError(f"rouge_tokens={unit!r}: use one of {', '.join(TOKEN_UNITS)}")
    if unit == "char":
        return rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=CharTokenizer())
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def sample_scores(predictions: list[str], references: list[str], unit: str = "char") -> list[dict[str, float]]:
    """One {rouge1, rouge2, rougeL} F1 x 100 dict per (prediction, reference) pair."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scorer = make_scorer(unit)
    # rouge-score's argument order is (target, prediction)
    return [{name: SCALE * score.fmeasure for name, score in scorer.score(ref, pred).items()}
            for pred, ref in zip(predictions, references)]


def corpus_scores(predictions: list[str], references: list[str], unit: str = "char") -> dict[str, float]:
    """The mean F1 x 100 of each ROUGE type over the samples."""
    scores = sample_scores(predictions, references, unit)
    if not scores:
        raise ValueError("no samples to score")
    return {name: sum(s[name] for s in scores) / len(scores) for name in ROUGE_TYPES}
