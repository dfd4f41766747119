"""A run's HF export (`<run>/model/`) names its special tokens, and transformers (when installed) computes what gpt_exp does.

The transformers checks need the `bench` extra (torch + transformers); without it they are skipped.
"""
from __future__ import annotations

import json
import stat

import mindspore as ms
import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from gpt_exp.generate import generate
from gpt_exp.model import GPT, GPTConfig, load_pretrained, load_state_dict, state_dict
from gpt_exp.run import export_model
from gpt_exp.tokenizers import TextTokenizer, corpus_bpe

TEXT = ("First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. First Citizen: You are "
        "all resolved rather to die than to famish? All: Resolved. resolved. First Citizen: First, you know Caius "
        "Marcius is chief enemy to the people.")
PROMPT = "First Citizen: You are all resolved"


@pytest.fixture(scope="module")
def bpe(tmp_path_factory) -> TextTokenizer:
    """gpt_exp's GPT-1 style BPE, trained on a few lines: bos, eos and pad are all <|endoftext|>."""
    return corpus_bpe(cache_dir=tmp_path_factory.mktemp("cache"), corpus=lambda: iter([TEXT] * 4),
                      corpus_id="test_hf_export", vocab_size=200, min_frequency=1)


def wordpiece() -> TextTokenizer:
    """A BERT-style vocabulary where every role has its own id, as bert_chinese does ([PAD] 0, [CLS] 2, [SEP] 3)."""
    words = sorted(set(TEXT.lower().replace(",", " , ").replace(".", " . ").replace(":", " : ")
                       .replace("?", " ? ").split()))
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return TextTokenizer(backend, {"pad": "[PAD]", "unk": "[UNK]", "bos": "[CLS]", "sep": "[SEP]", "eos": "[SEP]"},
                         "wordpiece")


def tiny_gpt(arch: str, vocab_size: int) -> GPT:
    ms.set_seed(0)
    model = GPT(GPTConfig(arch, vocab_size=vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=4, dropout=0.0))
    model.set_train(False)
    return model


@pytest.mark.parametrize("kind", ["corpus_bpe", "wordpiece"])
def test_the_export_names_the_tokenizers_special_tokens(kind, bpe, tmp_path):
    tokenizer = bpe if kind == "corpus_bpe" else wordpiece()
    model = tiny_gpt("gpt2", tokenizer.vocab_size)
    export_model(model, tokenizer, tmp_path)

    config = json.loads((tmp_path / "config.json").read_text())
    ids = {"bos_token_id": tokenizer.token_id("bos"), "eos_token_id": tokenizer.eos_id,
           "pad_token_id": tokenizer.pad_id}
    assert {k: config[k] for k in ids} == ids
    if kind == "wordpiece":  # each role its own token, not GPT-2's 50256 nor one id for all
        assert ids == {"bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0}
    tokenizer_config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == tokenizer.special_tokens["eos"]
    assert tokenizer_config["pad_token"] == tokenizer.backend.id_to_token(tokenizer.pad_id)
    assert tokenizer_config["model_max_length"] == 64

    # the extra keys do not disturb gpt_exp's own loading, and every file is readable by others
    reloaded = load_pretrained(str(tmp_path))
    np.testing.assert_array_equal(state_dict(reloaded)["transformer.wte.weight"],
                                  state_dict(model)["transformer.wte.weight"])
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path.name


# ---------------------------------------------------------------------------- with transformers installed

@pytest.fixture(scope="module")
def transformers():
    pytest.importorskip("torch")
    return pytest.importorskip("transformers")


@pytest.fixture(scope="module", params=["gpt2", "gpt1"])
def exported(request, bpe, tmp_path_factory):
    """(gpt_exp model, tokenizer, export folder) of a random tiny GPT of each architecture."""
    folder = tmp_path_factory.mktemp(f"export_{request.param}")
    model = tiny_gpt(request.param, bpe.vocab_size)
    export_model(model, bpe, folder)
    return model, bpe, folder


def gpt_exp_logits(model: GPT, ids: list[int]) -> np.ndarray:
    return model.lm_logits(model(ms.Tensor([ids], ms.int32))).asnumpy()[0]


def test_transformers_computes_the_same_logits(transformers, exported):
    import torch

    model, tokenizer, folder = exported
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    assert type(hf).__name__ == {"gpt2": "GPT2LMHeadModel", "gpt1": "OpenAIGPTLMHeadModel"}[model.config.arch]
    ids = tokenizer.encode(PROMPT)
    with torch.no_grad():
        hf_logits = hf(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(hf_logits, gpt_exp_logits(model, ids), atol=1e-4, rtol=1e-4)

    # AutoTokenizer reads the export's tokenizer with the same ids and the same special tokens
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert hf_tokenizer(PROMPT, add_special_tokens=False)["input_ids"] == ids
    assert hf_tokenizer.decode(ids) == tokenizer.decode(ids)
    assert (hf_tokenizer.eos_token_id, hf_tokenizer.pad_token_id) == (tokenizer.eos_id, tokenizer.pad_id)
    assert hf.generation_config.eos_token_id == tokenizer.eos_id


def test_a_greedy_continuation_matches_token_by_token(transformers, exported):
    import torch

    model, tokenizer, folder = exported
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    ids = tokenizer.encode(PROMPT)
    ours = generate(model, [ids], max_new_tokens=12, eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id)[0]
    with torch.no_grad():
        theirs = hf.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=12)[0, len(ids):].tolist()
    assert theirs == ours


def test_transformers_generate_stops_at_the_tokenizers_eos(transformers, exported, tmp_path):
    """Weights that always predict eos: generation must end after one token, not run to max_new_tokens."""
    import torch

    model, tokenizer, _ = exported
    rigged = tiny_gpt(model.config.arch, tokenizer.vocab_size)
    weights = state_dict(model)
    # the last LayerNorm outputs a constant vector v whatever comes in; the eos embedding row is v scaled up
    last_norm = "transformer.ln_f" if model.config.arch == "gpt2" else f"transformer.h.{model.config.n_layer - 1}.ln_2"
    v = np.random.default_rng(0).normal(size=model.config.n_embd).astype(np.float32)
    weights[f"{last_norm}.weight"] = np.zeros_like(weights[f"{last_norm}.weight"])
    weights[f"{last_norm}.bias"] = v
    table = "transformer.wte.weight" if model.config.arch == "gpt2" else "transformer.tokens_embed.weight"
    weights[table][tokenizer.eos_id] = 10 * v / np.linalg.norm(v)
    load_state_dict(rigged, weights)
    export_model(rigged, tokenizer, tmp_path)

    hf = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    ids = tokenizer.encode(PROMPT)
    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                          do_sample=False, max_new_tokens=10)[0, len(ids):].tolist()
    assert out == [tokenizer.eos_id]
    assert generate(rigged, [ids], max_new_tokens=10, eos_token_id=tokenizer.eos_id) == [out]
