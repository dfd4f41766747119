"""Build the GPT of the `model` group: from scratch, from an HF-format folder or hub id, or from a gpt_exp run."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from gpt_exp.errors import ConfigError

log = logging.getLogger(__name__)
MODEL_PRESETS = Path(__file__).resolve().parents[2] / "conf" / "model"
# what model.init_from decides; dropout stays the run's own (a fine-tune picks its dropout)
ADOPTED_KEYS = ("arch", "n_layer", "n_head", "n_embd", "n_positions", "layer_norm_epsilon")


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def init_folder(init_from: str | None) -> Path | None:
    """The local HF-format folder behind `model.init_from`, or None for scratch / a hub id.

    A gpt_exp run directory holds its exported weights and tokenizer in `<run>/model/`.
    """
    if not init_from:
        return None
    path = Path(str(init_from)).expanduser()
    if (path / "model" / "config.json").exists():
        return path / "model"
    if (path / "config.json").exists():
        return path
    if looks_like_path(str(init_from)):
        raise ConfigError(
            f"model.init_from={init_from} is neither an HF-format folder (config.json + model.safetensors) nor a "
            f"finished gpt_exp run (<run>/model/config.json). Fix: point it at one of those, or null to train from scratch.")
    return None


def check_model_config(model: DictConfig, max_seq_len: int) -> None:
    if model.n_embd % model.n_head:
        raise ConfigError(f"model.n_embd={model.n_embd} is not divisible by model.n_head={model.n_head}. "
                          f"Fix: an n_head that divides {model.n_embd} (e.g. model.n_head={_divisor(model.n_embd, model.n_head)}).")
    folder = init_folder(model.get("init_from"))
    n_positions = read_folder_config(folder, model.init_from)["n_positions"] if folder else model.n_positions
    if max_seq_len > n_positions:
        raise ConfigError(
            f"task.max_seq_len={max_seq_len} is longer than model.n_positions={n_positions} (model={model.name}"
            f"{', from ' + str(folder) if folder else ''}): the position embedding has no row for the extra tokens. "
            f"Fix: task.max_seq_len<={n_positions}, or a model with more positions.")
    if model.get("init_from") and folder is None:
        from gpt_exp.hub import require_hub

        require_hub(model.init_from, config_key="model.init_from")


HF_MODEL_TYPES = ("gpt2", "openai-gpt")
HF_SIZE_KEYS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")


def read_folder_config(folder: Path, init_from) -> dict:
    """An HF-format folder's config.json, checked enough to build the model from it, and its weights file's header."""
    def refuse(problem: str) -> ConfigError:
        return ConfigError(f"model.init_from={init_from}: {folder / 'config.json'} {problem}. Fix: point "
                           f"model.init_from at a folder exported by gpt_exp or transformers (a GPT-2 / GPT-1 "
                           f"config.json + model.safetensors), or null to train from scratch.")

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise refuse(f"is not readable JSON ({type(error).__name__}: {str(error).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise refuse("does not hold a JSON object")
    if config.get("model_type") not in HF_MODEL_TYPES:
        raise refuse(f"has model_type={config.get('model_type')!r}; gpt_exp reads {' or '.join(HF_MODEL_TYPES)}")
    bad = [key for key in HF_SIZE_KEYS if not (isinstance(config.get(key), int) and config[key] >= 1)]
    if bad:
        raise refuse(f"lacks positive whole numbers for {', '.join(bad)}")
    if config["n_embd"] % config["n_head"]:
        raise refuse(f"has n_embd={config['n_embd']} not divisible by n_head={config['n_head']}")
    check_weights_file(folder, init_from)
    return config


def check_weights_file(folder: Path, init_from) -> None:
    """Reads only the safetensors header (milliseconds): random bytes or a cut file fail here, not after the data."""
    weights = folder / "model.safetensors"
    if not weights.exists():
        if (folder / "model.safetensors.index.json").exists() or (folder / "pytorch_model.bin").exists():
            return
        raise ConfigError(f"model.init_from={init_from}: {folder} has config.json but no model.safetensors. "
                          f"Fix: point model.init_from at a complete export (config.json + model.safetensors).")
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="numpy") as file:
            file.keys()
    except Exception as error:  # safetensors raises its own SafetensorError, OSError or ValueError
        raise ConfigError(f"model.init_from={init_from}: {weights} is not a readable safetensors file "
                          f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). "
                          f"Fix: export the weights again, or point model.init_from at another folder.") from None


def _divisor(width: int, heads: int) -> int:
    return min((h for h in range(1, width + 1) if width % h == 0), key=lambda h: abs(h - heads))


def build_model(model: DictConfig, vocab_size: int):
    from gpt_exp.model import GPT, GPTConfig, load_pretrained

    if not model.get("init_from"):
        return GPT(GPTConfig(arch=model.arch, vocab_size=vocab_size, n_positions=model.n_positions,
                             n_embd=model.n_embd, n_layer=model.n_layer, n_head=model.n_head,
                             dropout=model.dropout, layer_norm_epsilon=model.layer_norm_epsilon))
    folder = init_folder(model.init_from)
    try:
        gpt = load_pretrained(str(folder or model.init_from), dropout=model.dropout)  # fine-tuning picks its dropout
    except (KeyError, ValueError) as error:  # weights that do not fit their config.json, an unsupported option
        raise ConfigError(f"model.init_from={model.init_from}: its weights cannot be loaded "
                          f"({str(error).splitlines()[0]}). Fix: point model.init_from at a GPT-2 / GPT-1 export "
                          f"whose model.safetensors matches its config.json.") from None
    config = gpt.config
    log.info("initialised %s (%d layers, %d wide, vocab %d) from %s", config.arch, config.n_layer, config.n_embd,
             config.vocab_size, folder or model.init_from)
    if vocab_size > config.vocab_size:
        gpt.resize_token_embeddings(vocab_size)  # special tokens appended by the task
    elif vocab_size < config.vocab_size:
        raise ConfigError(
            f"model.init_from={model.init_from} has a vocabulary of {config.vocab_size} tokens but the tokenizer has "
            f"{vocab_size}: they are not the same tokenizer. Fix: choose the tokenizer the weights were trained with "
            f"(tokenizer=gpt2_bpe for OpenAI's GPT-2; a gpt_exp run brings its own).")
    return gpt


# ---------------------------------------------------------------------------------------- labels

def source_model_name(init_from: str | None, default: str) -> str:
    """What the run is named after: `model.name`, or with `model.init_from` the model the weights are.

    A gpt_exp run: the model.name in its config.yaml; another HF-format folder: the preset of the same shape
    (`gpt1`, `gpt2`, ...) or `<arch>-<n_layer>x<n_embd>`; a hub id: its name. Never raises (it runs inside
    Hydra's interpolation of the run directory); a bad init_from is reported by check_model_config.
    """
    if not init_from:
        return default
    try:
        folder = init_folder(init_from)
    except ConfigError:
        return default
    if folder is None:
        return str(init_from).rstrip("/").split("/")[-1]
    run_config = folder.parent / "config.yaml"
    if folder.name == "model" and run_config.exists():
        name = OmegaConf.select(OmegaConf.load(run_config), "model.name")
        if name:
            return str(name)
    from gpt_exp.model.hf_weights import config_from_hf

    try:
        config = config_from_hf(json.loads((folder / "config.json").read_text()))
    except (ValueError, KeyError):
        return default
    return _preset_of_shape(config) or f"{config.arch}-{config.n_layer}x{config.n_embd}"


def _preset_of_shape(config) -> str | None:
    for path in sorted(MODEL_PRESETS.glob("*.yaml")):
        preset = OmegaConf.load(path)
        if all(preset.get(key) == getattr(config, key) for key in ("arch", "n_layer", "n_head", "n_embd", "n_positions")):
            return str(preset.name)
    return None


def adopt_loaded_model(model: DictConfig, config) -> None:
    """With model.init_from the loaded weights decide the architecture and size: write theirs into the run's config
    (config.yaml, W&B), with the absolute path they came from, so that no record calls a GPT-1 `gpt2-tiny`."""
    if not model.get("init_from"):
        return
    adopted = {"name": source_model_name(model.init_from, model.name),
               **{key: getattr(config, key) for key in ADOPTED_KEYS}}
    changed = [f"{key} {model.get(key)} -> {value}" for key, value in adopted.items() if model.get(key) != value]
    if changed:
        log.info("model.init_from=%s decides the model: %s", model.init_from, ", ".join(changed))
    with open_dict(model):
        model.update(adopted)
        model.init_from = weights_source(model.init_from)


def weights_source(init_from: str | None) -> str | None:
    """Where the weights came from: the absolute path of a local folder or run, else the hub id."""
    if not init_from:
        return None
    path = Path(str(init_from)).expanduser()
    return str(path.resolve()) if path.exists() else str(init_from)

