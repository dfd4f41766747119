"""The three tokenizers on their real vocabularies."""
from __future__ import annotations

import os

from gpt_exp.tasks.lm import continuation
from gpt_exp.tokenizers import TextTokenizer, bert_chinese, byte_bpe, corpus_bpe, gpt2_bpe

CACHE = os.environ["GPT_EXP_CACHE"]


def test_gpt2_bpe_gives_openai_ids():
    tok = gpt2_bpe(cache_dir=CACHE)
    assert tok.vocab_size == 50257
    assert tok.encode("Hello world") == [15496, 995]  # GPT-2's published ids
    assert tok.eos_id == 50256 and tok.pad_id == 50256
    text = "To be, or not to be: that is the question."
    assert tok.decode(tok.encode(text)) == text


def test_bert_chinese_splits_per_character_with_the_course_specials():
    tok = bert_chinese(cache_dir=CACHE)
    assert tok.vocab_size == 21128
    assert tok.encode("中国人民") == [704, 1744, 782, 3696]  # bert-base-chinese ids
    assert (tok.pad_id, tok.token_id("bos"), tok.token_id("sep"), tok.token_id("unk")) == (0, 101, 102, 100)
    assert tok.decode(tok.encode("新华社北京")).replace(" ", "") == "新华社北京"


def test_corpus_bpe_is_gpt1_style_and_cached(tmp_path):
    texts = ["The quick brown fox jumps over the lazy dog."] * 50 + ["Shall I compare thee to a summer's day?"] * 50
    tok = corpus_bpe(cache_dir=tmp_path, corpus=lambda: iter(texts), corpus_id="t", vocab_size=300, min_frequency=1)
    assert any(token.endswith("</w>") for token in tok.backend.get_vocab())
    assert tok.decode(tok.encode("the lazy dog")) == "the lazy dog"  # lower-cased, like GPT-1
    again = corpus_bpe(cache_dir=tmp_path, corpus=lambda: iter(()), corpus_id="t", vocab_size=300, min_frequency=1)
    assert again.encode("quick brown fox") == tok.encode("quick brown fox")  # loaded, not retrained on nothing
    # a generated continuation reads as the words after the prompt, with the space between them
    assert tok.decode(tok.encode("the")) + tok.decode(tok.encode("lazy dog")) == "thelazy dog"
    assert continuation(tok, tok.encode("the"), tok.encode("lazy dog")) == " lazy dog"
    gpt2 = gpt2_bpe(cache_dir=CACHE)
    assert continuation(gpt2, gpt2.encode("To be,"), gpt2.encode(" or not")) == " or not"


PLAY = ["ROMEO. But soft, what light through yonder window breaks?\nIt is the East, and Juliet is the Sun.\n",
        "  JULIET. O Romeo, Romeo, wherefore art thou Romeo?\nDeny thy father and refuse thy name;\n"] * 40


def test_byte_bpe_gives_cased_text_back_as_it_was_written(tmp_path):
    tok = byte_bpe(cache_dir=tmp_path, corpus=lambda: iter(PLAY), corpus_id="t", vocab_size=400, min_frequency=1)
    assert 257 < tok.vocab_size <= 400 and tok.name == "byte_bpe" and tok.eos_id == tok.token_id("bos")
    # capitals, punctuation against its word, newlines and indents, and text the corpus never had
    line = "  KING HENRY. Once more unto the breach, dear friends, once more;\nOr close the wall up!  Ça va?"
    assert tok.decode(tok.encode(line)) == line
    assert len(tok.encode(PLAY[1])) < len(PLAY[1].encode("utf-8")) / 2  # merges learned, not bytes only
    # a sample reads as it continues its prompt: a newline and a capital, no spaced-out punctuation
    assert continuation(tok, tok.encode("ROMEO."), tok.encode(" But soft!\nWhat light?")) == " But soft!\nWhat light?"
    assert continuation(tok, tok.encode("JULIET."), tok.encode(" O Romeo!")) == " O Romeo!"


def test_byte_bpe_builds_byte_identical_and_loads_from_its_cache(tmp_path):
    build = [byte_bpe(cache_dir=tmp_path / f"cache{i}", corpus=lambda: iter(PLAY), corpus_id="t", vocab_size=400,
                      min_frequency=1) for i in range(2)]
    assert build[0].files() == build[1].files()
    again = byte_bpe(cache_dir=tmp_path / "cache0", corpus=lambda: iter(()), corpus_id="t", vocab_size=400,
                     min_frequency=1)
    assert again.encode(PLAY[0]) == build[0].encode(PLAY[0])  # loaded, not retrained on nothing
    chars = byte_bpe(cache_dir=tmp_path, corpus=lambda: iter(PLAY), corpus_id="t", vocab_size=257)
    assert chars.encode("Romeo") == [chars.backend.token_to_id(c) for c in "Romeo"]  # 257: one token a byte


def test_added_special_tokens_extend_the_vocabulary_and_survive_saving(tmp_path):
    tok = gpt2_bpe(cache_dir=CACHE)
    added = tok.add_special_tokens({"bos": "<|start|>", "sep": "<|delimiter|>", "extract": "<|extract|>"})
    assert added == 3 and tok.vocab_size == 50260
    assert tok.token_id("extract") == 50259 and tok.encode("<|delimiter|>") == [50258]
    tok.save(tmp_path)
    loaded = TextTokenizer.load(tmp_path)
    assert loaded.vocab_size == 50260 and loaded.token_id("bos") == 50257
