"""ROUGE per Chinese character (and per English word) against values computed by hand."""
import pytest

from gpt_exp.rouge import CharTokenizer, corpus_scores, sample_scores


def f1(overlap, n_pred, n_ref):
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r) if overlap else 0.0


@pytest.mark.parametrize("prediction,reference,expected", [
    # unigrams: 我 爱 天 安 门 shared, 7 each side; bigrams 我爱 天安 安门 of 6; LCS 我爱天安门
    ("我爱天安门广场", "我爱北京天安门", {"rouge1": 5 / 7, "rouge2": 3 / 6, "rougeL": 5 / 7}),
    # clipped counts: 好 x3 predicted, x2 in the reference; bigram 好好 counted once
    ("好好好", "好好学习", {"rouge1": f1(2, 3, 4), "rouge2": f1(1, 2, 3), "rougeL": f1(2, 3, 4)}),
    # word order: every character shared, bigrams 上海 北京 of 3 (not 海北 / 京上), LCS of 2 (北京 or 上海)
    ("上海北京", "北京上海", {"rouge1": 1.0, "rouge2": 2 / 3, "rougeL": 0.5}),
    # NFKC (full-width Latin and digits), case and whitespace do not count
    ("gdp 增长 3%", "ＧＤＰ增长３％", {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}),
    ("", "北京", {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}),
    ("北京", "上海", {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}),
])
def test_per_character_scores(prediction, reference, expected):
    # F1 x 100, the scale papers print
    assert sample_scores([prediction], [reference])[0] == pytest.approx({k: 100 * v for k, v in expected.items()})


def test_character_tokens():
    assert CharTokenizer().tokenize("ＡＢ c\n１９９８年") == ["a", "b", "c", "1", "9", "9", "8", "年"]


def test_corpus_score_is_the_mean_of_the_samples():
    scores = corpus_scores(["我爱天安门广场", "", "北京"], ["我爱北京天安门", "北京", "北京"])
    assert scores == pytest.approx({"rouge1": 100 * (5 / 7 + 0 + 1) / 3, "rouge2": 100 * (0.5 + 0 + 1) / 3,
                                    "rougeL": 100 * (5 / 7 + 0 + 1) / 3})


def test_english_words_are_lowercased_and_stemmed():
    # 5 of 6 words shared (cats -> cat), bigrams "the cat", "on the", "the mat" of 5, LCS "the cat on the mat"
    expected = {"rouge1": 500 / 6, "rouge2": 300 / 5, "rougeL": 500 / 6}
    assert sample_scores(["The cats are on the mat"], ["the cat is on the mat"], unit="word")[0] == pytest.approx(expected)


def test_bad_input():
    with pytest.raises(ValueError, match="rouge_tokens"):
        sample_scores(["a"], ["a"], unit="sentence")
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        sample_scores(["a", "b"], ["a"])
