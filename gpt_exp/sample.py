"""`python -m gpt_exp sample <run dir | HF-format folder> [key=value ...]`: text from a trained model in seconds.

gpt_exp's nanoGPT-style sample.py. It reads a finished run's exported model (`<run>/model/`: config.json +
model.safetensors + the tokenizer) or any HF-format folder with a tokenizer.json, and prints the completions.
No data is loaded, no run directory is made and nothing goes to W&B; a bad option fails before the model
loads, as `config error: ...` with exit code 2.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gpt_exp.errors import ConfigError

STRATEGIES = ("greedy", "beam", "sample")  # gpt_exp.generate.STRATEGIES, without importing MindSpore first
DEVICES = ("auto", "cpu", "gpu", "ascend")


@dataclass(frozen=True)
class Option:
    default: object
    help: str


OPTIONS = {
    "prompt": Option("", "text to continue; empty: start from the tokenizer's bos token (a new document)"),
    "num_samples": Option(3, "completions to draw (strategy=sample; greedy and beam give the one best)"),
    "max_new_tokens": Option(60, "new tokens per completion; fewer when the model ends it with eos"),
    "strategy": Option("sample", "sample | greedy | beam"),
    "temperature": Option(0.8, "sample: divides the logits; < 1 sharper, > 1 flatter"),
    "top_k": Option(40, "sample: draw from the k most likely tokens only; 0 = all"),
    "top_p": Option(1.0, "sample: draw from the smallest set whose probability reaches p; 1.0 = off"),
    "num_beams": Option(4, "beam: beams kept per prompt"),
    "seed": Option(0, "sample: the same seed gives the same completions; change it for others"),
    "device": Option("auto", "auto | cpu | gpu | ascend"),
}


def usage() -> str:
    width = max(len(name) for name in OPTIONS) + len("=") + 8
    lines = [
        "usage: python -m gpt_exp sample RUN_DIR|HF_FOLDER [key=value ...]   (or: gpt-exp sample ...)",
        "",
        "Completes a prompt with a trained model: a gpt_exp run directory (its model/ folder) or an HF-format",
        "folder (config.json + model.safetensors + tokenizer.json). Loads no data, writes nothing.",
        "",
        "options (default):",
        *(f"  {name + '=' + (str(option.default) or repr('')):<{width}} {option.help}" for name, option in OPTIONS.items()),
        "",
        "examples:",
        "  python -m gpt_exp sample outputs/DATE/TIME_gpt2-tiny-lm-fp32 prompt='ROMEO:'",
        "  python -m gpt_exp sample RUN strategy=greedy max_new_tokens=30 prompt='To be, or'",
        "  python -m gpt_exp sample RUN num_samples=5 temperature=1.0 top_k=0 top_p=0.9 seed=7",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- options

def parse_args(argv: list[str]) -> tuple[Path, dict]:
    """The folder and every option (defaults filled in) from `PATH key=value ...`."""
    paths = [arg for arg in argv if "=" not in arg]
    if len(paths) != 1:
        raise ConfigError(f"sample {' '.join(argv) or '(nothing)'}: give exactly one run directory or HF-format "
                          f"folder{', got ' + ' '.join(paths) if paths else ''}. "
                          f"Fix: python -m gpt_exp sample RUN_DIR [key=value ...] (see --help).")
    options = {name: option.default for name, option in OPTIONS.items()}
    for arg in argv:
        if "=" in arg:
            key, text = arg.split("=", 1)
            options[key] = parse_value(key, text)
    check_options(options)
    return Path(paths[0]).expanduser(), options


def parse_value(key: str, text: str):
    if key not in OPTIONS:
        raise ConfigError(f"{key}={text}: `sample` has no option {key!r}. Fix: one of {', '.join(OPTIONS)} (see --help).")
    text = _unquoted(text)
    kind = type(OPTIONS[key].default)
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{key}={text}: not a{'n' if kind is int else ''} {kind.__name__}. "
                          f"Fix: e.g. {key}={OPTIONS[key].default}.") from None


def _unquoted(text: str) -> str:
    """One pair of matching quotes around a value is Hydra-style quoting, not part of it: prompt='"ROMEO:"'."""
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def check_options(options: dict) -> None:
    """Each rule names its key, so a bad value fails before the model is loaded."""
    rules = [  # (key, valid, what it must be, the fix)
        ("strategy", options["strategy"] in STRATEGIES, "a decoding strategy", f"one of {', '.join(STRATEGIES)}"),
        ("device", options["device"].lower() in DEVICES, "a device", f"one of {', '.join(DEVICES)}"),
        ("num_samples", options["num_samples"] >= 1, "at least 1", "num_samples=1 or more"),
        ("max_new_tokens", options["max_new_tokens"] >= 1, "at least 1", "max_new_tokens=1 or more"),
        ("temperature", options["temperature"] > 0, "above 0", "e.g. temperature=0.8; for no randomness strategy=greedy"),
        ("top_k", options["top_k"] >= 0, "0 (off) or more", "e.g. top_k=40, or top_k=0 for all tokens"),
        ("top_p", 0 < options["top_p"] <= 1, "in (0, 1]", "e.g. top_p=0.9, or top_p=1.0 for off"),
        ("num_beams", options["num_beams"] >= 1, "at least 1", "e.g. num_beams=4"),
    ]
    for key, valid, requirement, fix in rules:
        if not valid:
            raise ConfigError(f"{key}={options[key]}: must be {requirement}. Fix: {fix}.")


# ------------------------------------------------------------------------------------- loading

def model_folder(path: Path) -> Path:
    """The HF-format folder behind PATH: a run's `model/`, or PATH itself."""
    if (path / "model" / "config.json").exists():
        return path / "model"
    if (path / "config.json").exists():
        return path
    if (path / "config.yaml").exists() or (path / "checkpoints").exists():
        raise ConfigError(f"sample {path}: this run has no exported model (model/config.json); a run exports it "
                          f"when training ends. Fix: let the run finish, or continue it with trainer.resume={path}.")
    run, folder = "a gpt_exp run directory (<run>/model/config.json)", "an HF-format folder (config.json + model.safetensors)"
    problem = f"is neither {run} nor {folder}" if path.is_dir() else f"does not exist (expected {run} or {folder})"
    raise ConfigError(f"sample {path}: {problem}. Fix: give the run directory a run printed at its end.")


def load_tokenizer(folder: Path):
    """gpt_exp's own saved tokenizer, or an HF folder's tokenizer.json with the roles of its tokenizer_config.json."""
    from tokenizers import Tokenizer

    from gpt_exp.tokenizers import TextTokenizer

    if (folder / "special_tokens.json").exists() and (folder / "tokenizer.json").exists():
        return TextTokenizer.load(folder)
    if not (folder / "tokenizer.json").exists():
        raise ConfigError(f"sample {folder}: no tokenizer.json beside the weights. Fix: save the tokenizer into "
                          f"the folder (transformers: tokenizer.save_pretrained(folder)), or give a gpt_exp run.")
    roles = _hf_roles(folder)
    if "eos" not in roles:
        raise ConfigError(f"sample {folder}: tokenizer_config.json / special_tokens_map.json name no eos_token. "
                          f"Fix: add \"eos_token\" to tokenizer_config.json.")
    return TextTokenizer(Tokenizer.from_file(str(folder / "tokenizer.json")), roles, folder.name)


def _hf_roles(folder: Path) -> dict[str, str]:
    roles = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the later file wins, as in transformers
        written = json.loads((folder / name).read_text()) if (folder / name).exists() else {}
        for role in ("bos", "eos", "pad", "unk", "sep"):
            token = written.get(f"{role}_token")
            if token:  # a string, or an AddedToken written as {"content": ...}
                roles[role] = token["content"] if isinstance(token, dict) else token
    return roles


def load(folder: Path, device: str = "auto"):
    """(model, tokenizer) on the chosen device, in eval mode, with no dropout."""
    from omegaconf import OmegaConf

    from gpt_exp.backend import device as devices
    from gpt_exp.model import load_pretrained

    target = devices.resolve_target(OmegaConf.create({"target": device, "name": device}))
    devices.configure(OmegaConf.create({"device_id": 0, "num_threads": None}), target)
    tokenizer = load_tokenizer(folder)
    try:
        model = load_pretrained(str(folder), dropout=0.0)
    except (ValueError, KeyError) as error:
        raise ConfigError(f"sample {folder}: the weights do not load into gpt_exp's GPT ({error}). "
                          f"Fix: give a GPT-1 / GPT-2 folder (model_type openai-gpt or gpt2).") from None
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ConfigError(f"sample {folder}: the tokenizer has {tokenizer.vocab_size} tokens, the model "
                          f"{model.config.vocab_size}: they do not belong together. Fix: the tokenizer the model "
                          f"was trained with.")
    model.set_train(False)
    return model, tokenizer


# ------------------------------------------------------------------------------------- decoding

def complete(model, tokenizer, prompt: str = "", num_samples: int = 3, max_new_tokens: int = 60,
             strategy: str = "sample", temperature: float = 0.8, top_k: int = 40, top_p: float = 1.0,
             num_beams: int = 4, seed: int = 0) -> list[str]:
    """Prompt + completion texts: num_samples draws for strategy=sample, the one best for greedy / beam."""
    from gpt_exp.generate import generate
    from gpt_exp.tasks.lm import continuation

    prompt_ids = tokenizer.encode(prompt) if prompt else []
    context = prompt_ids or [tokenizer.token_id("bos") if tokenizer.has_role("bos") else tokenizer.eos_id]
    rows = num_samples if strategy == "sample" else 1
    new_tokens = generate(model, [context] * rows, max_new_tokens=max_new_tokens, strategy=strategy,
                          num_beams=num_beams, temperature=temperature, top_k=top_k, top_p=top_p,
                          eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id, seed=seed)
    return [prompt + continuation(tokenizer, prompt_ids, new) for new in new_tokens]


def sample(path: str | Path, **options) -> list[str]:
    """The completions `python -m gpt_exp sample PATH key=value ...` prints, as a Python call."""
    options = {name: option.default for name, option in OPTIONS.items()} | options
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"{unknown[0]}={options[unknown[0]]}: `sample` has no option {unknown[0]!r}. "
                          f"Fix: one of {', '.join(OPTIONS)}.")
    check_options(options)
    model, tokenizer = load(model_folder(Path(path).expanduser()), options.pop("device"))
    return complete(model, tokenizer, **options)


def main(argv: list[str]) -> int:
    if not argv or any(arg in ("-h", "--help") for arg in argv):
        print(usage())
        return 0 if argv else 2
    path, options = parse_args(argv)
    folder = model_folder(path)
    start = time.perf_counter()
    model, tokenizer = load(folder, options.pop("device"))
    loaded = time.perf_counter()
    texts = complete(model, tokenizer, **options)
    done = time.perf_counter()
    config = model.config
    print(f"sample: {folder} ({config.arch}, {config.n_layer} layers x {config.n_embd}, vocab {config.vocab_size}) "
          f"loaded in {loaded - start:.1f} s; {len(texts)} completion(s) in {done - loaded:.1f} s", file=sys.stderr)
    if options["strategy"] != "sample" and options["num_samples"] != OPTIONS["num_samples"].default:
        print(f"sample: strategy={options['strategy']} is deterministic: one completion "
              f"(num_samples applies to strategy=sample)", file=sys.stderr)
    print("\n---------------\n".join(texts))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GLOG_v", "3")
    try:
        sys.exit(main(sys.argv[1:]))
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        sys.exit(2)
