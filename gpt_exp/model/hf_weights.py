"""Hugging Face checkpoints for gpt_exp's GPT: config.json + model.safetensors, read and written.

The folders this writes load with `from_pretrained` in HF transformers and MindNLP, and the
folders they write (or the hub holds) load here, because GPT's parameter names are HF's own.
MindNLP is deliberately not imported: its import points HF_ENDPOINT at a mirror (see gpt_exp.hub).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import NamedTuple

import numpy as np

from gpt_exp.model.gpt import GPT, GPTConfig

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
HUB_FILES = ["config.json", "generation_config.json", "*.safetensors", SAFETENSORS_INDEX_FILE,
             "tokenizer*", "vocab.json", "vocab.txt", "merges.txt", "special_tokens_map.json"]

# In HF checkpoints but not parameters: the causal-mask buffers, and the LM head tied to the
# token embedding (HF drops it on save; older checkpoints still hold a copy).
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
_IGNORED_NAMES = ("lm_head.weight",)

# The values HF's GPT2Config / OpenAIGPTConfig assume when config.json leaves a key out
# (save_pretrained writes only the keys that differ from these).
_HF_DEFAULTS = {
    "gpt2": dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                 resid_pdrop=0.1, layer_norm_epsilon=1e-5, activation_function="gelu_new"),
    "openai-gpt": dict(vocab_size=40478, n_positions=512, n_embd=768, n_layer=12, n_head=12,
                       resid_pdrop=0.1, layer_norm_epsilon=1e-5, afn="gelu"),
}
_ARCH_OF_MODEL_TYPE = {"gpt2": "gpt2", "openai-gpt": "gpt1"}
# What each config calls the tanh-approximated GELU that GPT computes: HF's OpenAI GPT maps afn="gelu" to it
_GELU_NEW_NAMES = {"gpt2": ("gelu_new",), "openai-gpt": ("gelu", "gelu_new")}


class LoadResult(NamedTuple):
    missing_keys: list
    unexpected_keys: list


# ---------------------------------------------------------------------------------------- configs

def config_from_hf(hf_config: dict) -> GPTConfig:
    model_type = hf_config.get("model_type")
    if model_type not in _ARCH_OF_MODEL_TYPE:
        raise ValueError(f"config.json has model_type={model_type!r}; gpt_exp reads 'gpt2' and 'openai-gpt'")
    hf = {**_HF_DEFAULTS[model_type], **hf_config}
    _reject_unsupported(hf, model_type)
    return GPTConfig(arch=_ARCH_OF_MODEL_TYPE[model_type], vocab_size=hf["vocab_size"],
                     n_positions=hf["n_positions"], n_embd=hf["n_embd"], n_layer=hf["n_layer"],
                     n_head=hf["n_head"], dropout=hf["resid_pdrop"],  # HF's three pdrops are equal in practice
                     layer_norm_epsilon=hf["layer_norm_epsilon"])


def _reject_unsupported(hf: dict, model_type: str) -> None:
    """Fail on HF options this GPT does not implement, instead of loading weights into the wrong math."""
    activation = hf["activation_function"] if model_type == "gpt2" else hf["afn"]
    if activation not in _GELU_NEW_NAMES[model_type]:
        raise ValueError(f"unsupported activation {activation!r} in config.json (gpt_exp uses gelu_new)")
    if hf.get("n_inner") not in (None, 4 * hf["n_embd"]):
        raise ValueError(f"unsupported n_inner={hf['n_inner']} in config.json (gpt_exp uses 4 * n_embd)")
    for flag, supported in [("scale_attn_by_inverse_layer_idx", False), ("add_cross_attention", False),
                            ("scale_attn_weights", True), ("tie_word_embeddings", True)]:
        if hf.get(flag, supported) != supported:
            raise ValueError(f"unsupported {flag}={hf[flag]} in config.json")


def config_to_hf(config: GPTConfig) -> dict:
    common = dict(vocab_size=config.vocab_size, n_positions=config.n_positions, n_embd=config.n_embd,
                  n_layer=config.n_layer, n_head=config.n_head, resid_pdrop=config.dropout,
                  embd_pdrop=config.dropout, attn_pdrop=config.dropout,
                  layer_norm_epsilon=config.layer_norm_epsilon, initializer_range=0.02,
                  tie_word_embeddings=True, torch_dtype="float32")
    if config.arch == "gpt2":
        return dict(architectures=["GPT2LMHeadModel"], model_type="gpt2", n_ctx=config.n_positions,
                    activation_function="gelu_new", n_inner=None, scale_attn_weights=True, **common)
    return dict(architectures=["OpenAIGPTLMHeadModel"], model_type="openai-gpt", afn="gelu", **common)


# ---------------------------------------------------------------------------------------- weights

def state_dict(model: GPT) -> dict[str, np.ndarray]:
    """Every parameter under its HF name (`transformer.h.0.ln_1.weight`, ...), as numpy arrays."""
    return {name: param.asnumpy() for name, param in model.parameters_and_names()}


def load_state_dict(model: GPT, sd: dict, strict: bool = True) -> LoadResult:
    """Copy HF-named arrays into the model; names may omit the `transformer.` prefix (as on the hub)."""
    import mindspore as ms

    params = dict(model.parameters_and_names())
    incoming = {_canonical_name(k): v for k, v in sd.items() if not _is_ignored(k)}
    missing = sorted(set(params) - set(incoming))
    unexpected = sorted(set(incoming) - set(params))
    if strict and (missing or unexpected):
        raise KeyError(f"checkpoint does not match the {model.config.arch} model: "
                       f"missing {missing or 'none'}; unexpected {unexpected or 'none'}")
    for name in sorted(set(params) & set(incoming)):
        param, value = params[name], np.asarray(incoming[name])
        if tuple(value.shape) != tuple(param.shape):
            raise ValueError(f"shape mismatch for {name}: checkpoint {tuple(value.shape)}, "
                             f"model {tuple(param.shape)}")
        # copy_ writes into the parameter's memory; set_data would swap it, and graphs compiled
        # earlier (a jit train step, generate's cache) would keep reading the old values
        param.copy_(ms.Tensor(value, dtype=param.dtype))
    return LoadResult(missing, unexpected)


def _is_ignored(name: str) -> bool:
    return name.endswith(_IGNORED_SUFFIXES) or name in _IGNORED_NAMES


def _canonical_name(name: str) -> str:
    return name if name.startswith("transformer.") else "transformer." + name


# ---------------------------------------------------------------------------------------- folders

def save_pretrained(model: GPT, folder: str, special_token_ids: dict[str, int] | None = None) -> None:
    """Write config.json + model.safetensors, readable by HF / MindNLP `from_pretrained`.

    special_token_ids: `bos_token_id` / `eos_token_id` / `pad_token_id` of the tokenizer, written into
    config.json. Without them HF assumes GPT-2's 50256, and its `generate` never stops at end of sequence.
    """
    from safetensors.numpy import save_file

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, CONFIG_FILE), "w") as f:
        json.dump({**config_to_hf(model.config), **(special_token_ids or {})}, f, indent=2)
    tensors = {name: np.ascontiguousarray(value) for name, value in state_dict(model).items()}
    # HF transformers refuses safetensors files without this metadata
    save_file(tensors, os.path.join(folder, SAFETENSORS_FILE), metadata={"format": "pt"})
    os.chmod(os.path.join(folder, SAFETENSORS_FILE), 0o644)  # safetensors writes 0600, unlike every other file here


def load_pretrained(name_or_path: str, **overrides) -> GPT:
    """A GPT from a local HF-format folder, or from the hub (when reachable) for a hub id like `gpt2`.

    `overrides` replace GPTConfig fields of the checkpoint's config, e.g. `dropout=0.0`.
    """
    folder = name_or_path if os.path.isdir(name_or_path) else _download(name_or_path)
    with open(os.path.join(folder, CONFIG_FILE)) as f:
        config = dataclasses.replace(config_from_hf(json.load(f)), **overrides)
    model = GPT(config)
    load_state_dict(model, _read_weights(folder))
    return model


def _read_weights(folder: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    if os.path.exists(os.path.join(folder, SAFETENSORS_FILE)):
        return load_file(os.path.join(folder, SAFETENSORS_FILE))
    if os.path.exists(os.path.join(folder, SAFETENSORS_INDEX_FILE)):
        with open(os.path.join(folder, SAFETENSORS_INDEX_FILE)) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(os.path.join(folder, shard)).items()}
    if os.path.exists(os.path.join(folder, TORCH_FILE)):
        return _read_torch_weights(os.path.join(folder, TORCH_FILE))
    raise FileNotFoundError(f"{folder} holds no {SAFETENSORS_FILE} (nor {TORCH_FILE})")


def _read_torch_weights(path: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise RuntimeError(
            f"{path} is a PyTorch checkpoint and torch is not installed. Convert it to safetensors "
            f"where torch is available: `from safetensors.torch import save_file; "
            f"save_file(torch.load('{TORCH_FILE}'), '{SAFETENSORS_FILE}', metadata={{'format': 'pt'}})`"
        ) from None
    return {k: v.float().numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}


def _download(hub_id: str) -> str:
    """The local snapshot of a hub id: from the HF cache if there, else downloaded; fails fast offline."""
    from huggingface_hub import snapshot_download

    from gpt_exp.hub import require_hub

    if os.path.exists(hub_id):
        raise ValueError(f"model.init_from={hub_id!r} is a file; give the folder that holds {CONFIG_FILE}")
    try:
        return snapshot_download(hub_id, allow_patterns=HUB_FILES, local_files_only=True)
    except Exception:  # not in the cache: go to the network
        pass
    require_hub(hub_id, "model.init_from")
    return snapshot_download(hub_id, allow_patterns=HUB_FILES)
