"""Tokenizers: GPT-2's byte-level BPE (its own or one trained on the corpus), a GPT-1 style BPE trained on
the corpus, BERT Chinese WordPiece.

All of them are built with the `tokenizers` library from local vocabulary files, which is what
MindNLP's tokenizer classes wrap too; doing it directly keeps MindNLP's import side effects
(hub mirror, environment edits, Tensor monkeypatches) out of the training process. MindNLP is
used only for a hub name (`tokenizer=hub tokenizer.name=...`).

Special tokens are kept by *role* (bos, eos, sep, pad, unk) so that tasks can ask for
"the delimiter" without knowing which vocabulary they run on.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from gpt_exp.data.cache import entry_lock, publish_entry, verified_entry


class TextTokenizer:
    """A `tokenizers.Tokenizer` plus the ids of its special tokens by role."""

    def __init__(self, backend: Tokenizer, special_tokens: dict[str, str], name: str):
        self.backend = backend
        self.special_tokens = dict(special_tokens)
        self.name = name
        missing = [t for t in self.special_tokens.values() if backend.token_to_id(t) is None]
        if missing:
            backend.add_special_tokens(missing)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_id(self, role: str) -> int:
        if role not in self.special_tokens:
            raise KeyError(f"tokenizer {self.name!r} has no {role!r} token (it has {sorted(self.special_tokens)})")
        return self.backend.token_to_id(self.special_tokens[role])

    def has_role(self, role: str) -> bool:
        return role in self.special_tokens

    @property
    def eos_id(self) -> int:
        return self.token_id("eos")

    @property
    def pad_id(self) -> int:
        # GPT-2 has no pad token; padded positions are masked out, so eos serves.
        return self.token_id("pad") if "pad" in self.special_tokens else self.eos_id

    def add_special_tokens(self, roles: dict[str, str]) -> int:
        """Add tokens such as GPT-1's start / delimiter / extract; returns how many are new."""
        before = self.vocab_size
        new = [tok for tok in roles.values() if self.backend.token_to_id(tok) is None]
        if new:
            self.backend.add_special_tokens(new)
        self.special_tokens.update(roles)
        return self.vocab_size - before

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def files(self) -> dict[str, bytes]:
        """File name -> content of the saved form (what `save` writes and `load` reads)."""
        return {"tokenizer.json": self.backend.to_str(pretty=True).encode("utf-8"),
                "special_tokens.json": json.dumps({"name": self.name, "special_tokens": self.special_tokens},
                                                  indent=2).encode("utf-8")}

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in self.files().items():
            (folder / name).write_bytes(content)

    @classmethod
    def load(cls, folder: str | Path) -> "TextTokenizer":
        folder = Path(folder)
        meta = json.loads((folder / "special_tokens.json").read_text())
        return cls(Tokenizer.from_file(str(folder / "tokenizer.json")), meta["special_tokens"], meta["name"])


def gpt2_bpe(cache_dir: str | Path, corpus: Callable[[], Iterator[str]] | None = None, **_) -> TextTokenizer:
    """OpenAI's GPT-2 byte-level BPE (encoder.json + vocab.bpe)."""
    from gpt_exp.data.sources import vocab_files

    files = vocab_files("gpt2_bpe", cache_dir=Path(cache_dir))
    backend = Tokenizer(models.BPE.from_file(str(files["vocab"]), str(files["merges"])))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return TextTokenizer(backend, {"eos": "<|endoftext|>", "bos": "<|endoftext|>"}, "gpt2_bpe")


def bert_chinese(cache_dir: str | Path, corpus: Callable[[], Iterator[str]] | None = None, **_) -> TextTokenizer:
    """bert-base-chinese WordPiece: Chinese is split per character, as in the course."""
    from gpt_exp.data.sources import vocab_files

    files = vocab_files("bert_chinese", cache_dir=Path(cache_dir))
    backend = Tokenizer(models.WordPiece.from_file(str(files["vocab"]), unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    roles = {"pad": "[PAD]", "unk": "[UNK]", "bos": "[CLS]", "sep": "[SEP]", "eos": "[SEP]"}
    return TextTokenizer(backend, roles, "bert_chinese")


CORPUS_BPE_SPECIALS = {"unk": "<unk>", "eos": "<|endoftext|>", "bos": "<|endoftext|>"}
WORD_END = "</w>"


def corpus_bpe(cache_dir: str | Path, corpus: Callable[[], Iterator[str]], corpus_id: str,
               vocab_size: int = 4096, min_frequency: int = 2, lowercase: bool = True) -> TextTokenizer:
    """A GPT-1 style BPE (word-final `</w>`) trained on `corpus`, cached under its settings.

    The same corpus and settings give a byte-identical tokenizer.json on every build and machine,
    and concurrent first runs train it once (the others wait on the cache entry's lock and load it).
    """
    settings = {"corpus_id": corpus_id, "vocab_size": vocab_size, "min_frequency": min_frequency,
                "lowercase": lowercase}
    key = hashlib.sha256(json.dumps([corpus_id, vocab_size, min_frequency, lowercase]).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / "tokenizers" / f"corpus_bpe-{key}"
    with entry_lock(folder):
        if verified_entry(folder, lambda info: info.get("settings") == settings) is None:
            tokenizer = TextTokenizer(train_corpus_bpe(corpus, vocab_size, min_frequency, lowercase),
                                      CORPUS_BPE_SPECIALS, "corpus_bpe")
            publish_entry(folder, tokenizer.files(), {"kind": "corpus_bpe", "settings": settings,
                                                      "vocab_size": tokenizer.vocab_size})
    return TextTokenizer.load(folder)  # what the cache holds is what this run uses


def train_corpus_bpe(corpus: Callable[[], Iterator[str]], vocab_size: int, min_frequency: int,
                     lowercase: bool) -> Tokenizer:
    """The BPE of `corpus`, deterministic.

    HF tokenizers' BpeTrainer (0.19) gives each word-final symbol ("e</w>") its id in the order it
    meets them while iterating a Rust HashMap of the words, which is seeded randomly per process; ties
    between equally frequent merges are broken by those ids, so two builds differed in ~1% of ids and
    in the merges at the vocabulary's cut. Declaring every word-final symbol up front, in sorted order,
    as a trainer special token fixes their ids; they are then turned back into ordinary vocabulary.
    """
    backend = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix=WORD_END))
    backend.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase()] if lowercase else [normalizers.NFKC()])
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # words and punctuation, like GPT-1's spaCy step
    backend.decoder = decoders.BPEDecoder(suffix=WORD_END)
    specials = list(dict.fromkeys(CORPUS_BPE_SPECIALS.values()))
    word_ends = _word_final_symbols(backend, corpus())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, end_of_word_suffix=WORD_END,
        special_tokens=specials + word_ends, show_progress=False)
    backend.train_from_iterator(corpus(), trainer=trainer)
    return _as_plain_vocabulary(backend, set(word_ends))


def _word_final_symbols(backend: Tokenizer, texts: Iterable[str]) -> list[str]:
    """Sorted "<last char></w>" of every word the trainer will see."""
    last_chars = set()
    for text in texts:
        words = backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))
        last_chars.update(word[-1] for word, _ in words if word)
    return [char + WORD_END for char in sorted(last_chars)]


def _as_plain_vocabulary(backend: Tokenizer, tokens: set[str]) -> Tokenizer:
    """The tokenizer with `tokens` no longer added/special tokens (they stay in the BPE vocabulary, same ids)."""
    content = json.loads(backend.to_str())
    content["added_tokens"] = [added for added in content["added_tokens"] if added["content"] not in tokens]
    return Tokenizer.from_str(json.dumps(content))


BYTE_BPE_SPECIALS = {"eos": "<|endoftext|>", "bos": "<|endoftext|>"}


def byte_bpe(cache_dir: str | Path, corpus: Callable[[], Iterator[str]], corpus_id: str,
             vocab_size: int = 4096, min_frequency: int = 2) -> TextTokenizer:
    """A GPT-2 style byte-level BPE trained on `corpus`, cached under its settings.

    Cased and lossless: no normalizer, spaces and newlines live inside the tokens (GPT-2's `Ġ`), so
    decoding gives the text back exactly as it was written. vocab_size=257 is a byte (character) level
    tokenizer: the 256 bytes and eos, no merges. Same corpus and settings, same tokenizer.json.
    """
    settings = {"corpus_id": corpus_id, "vocab_size": vocab_size, "min_frequency": min_frequency}
    key = hashlib.sha256(json.dumps(["byte_bpe", corpus_id, vocab_size, min_frequency]).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / "tokenizers" / f"byte_bpe-{key}"
    with entry_lock(folder):
        if verified_entry(folder, lambda info: info.get("settings") == settings) is None:
            tokenizer = TextTokenizer(train_byte_bpe(corpus, vocab_size, min_frequency), BYTE_BPE_SPECIALS, "byte_bpe")
            publish_entry(folder, tokenizer.files(), {"kind": "byte_bpe", "settings": settings,
                                                      "vocab_size": tokenizer.vocab_size})
    return TextTokenizer.load(folder)


def train_byte_bpe(corpus: Callable[[], Iterator[str]], vocab_size: int, min_frequency: int) -> Tokenizer:
    """The byte-level BPE of `corpus`. Deterministic without corpus_bpe's workaround: the trainer's initial
    alphabet (all 256 byte symbols) gets its ids in sorted order, and there is no word-final suffix whose
    symbols would be numbered in hash-map order."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's split of words, spaces, digits
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(dict.fromkeys(BYTE_BPE_SPECIALS.values())),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(corpus(), trainer=trainer)
    return backend


def saved(cache_dir: str | Path, path: str, corpus=None, **_) -> TextTokenizer:
    """The tokenizer an earlier run saved: a run directory (<run>/tokenizer) or a folder with tokenizer.json.

    Training from scratch with the tokenizer of a pre-training run keeps the vocabulary identical to
    the pre-trained arm, so a pre-trained vs from-scratch comparison differs only in the weights.
    """
    from gpt_exp.errors import ConfigError

    root = Path(str(path)).expanduser()
    for folder in (root / "tokenizer", root / "model", root):
        if (folder / "tokenizer.json").exists() and (folder / "special_tokens.json").exists():
            return TextTokenizer.load(folder)
    raise ConfigError(f"tokenizer.path={path} holds no saved tokenizer (tokenizer.json + special_tokens.json, "
                      f"or a run directory with tokenizer/). Fix: point it at a finished gpt_exp run.")


def from_hub(cache_dir: str | Path, name: str, corpus=None, **_) -> TextTokenizer:
    """A tokenizer by hub name through MindNLP (needs a network)."""
    from gpt_exp.hub import require_hub, mindnlp_imported

    require_hub(name, config_key="tokenizer.name",
                fix="use a tokenizer built from local files: tokenizer=gpt2_bpe, bert_chinese or corpus_bpe")
    with mindnlp_imported():
        from mindnlp.transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(name, cache_dir=str(Path(cache_dir) / "hub"))
    backend = hf.backend_tokenizer
    roles = {role: getattr(hf, f"{role}_token") for role in ("bos", "eos", "sep", "pad", "unk")
             if getattr(hf, f"{role}_token", None)}
    if "eos" not in roles:
        roles["eos"] = roles.get("sep", roles.get("bos"))
    return TextTokenizer(backend, roles, name)
