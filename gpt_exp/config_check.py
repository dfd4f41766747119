"""`check_settings(cfg)`: the whole composed config against gpt_exp/config_schema.py, before any work.

Refused, each with one line `<key>=<value>: <what is wrong>. Fix: <what to do>`:
- a value of the wrong type (`optimizer.lr=abc`), out of its range (`model.dropout=1.5`) or not one of
  its choices (`logger.mode=shouting`), with the nearest choice suggested;
- a key the schema does not know (`+typo=1`, `+trainer.max_step=5`), with the node's keys listed and
  the nearest one suggested; a required key left at `???`; an interpolation that does not resolve;
- settings that contradict each other (model.n_embd vs n_head, task.max_seq_len vs model.n_positions,
  the data source, the summarization decoding lengths, a bad `model.init_from` folder).

Nothing here imports MindSpore or datasets, downloads or builds anything: the check takes milliseconds.
Checks that need the machine (the device, bf16 support, a hub) stay in `gpt_exp.run.check_config`,
and the ones that need the data run after loading it (gpt_exp/data/records.py, the tasks).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from pathlib import Path
from typing import Any, Union

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gpt_exp import config_schema as schema
from gpt_exp.errors import ConfigError

SKIPPED_ROOT_KEYS = ("hydra",)  # Hydra's own node (present in compose(..., return_hydra_config=True))


def check_settings(cfg: DictConfig) -> None:
    """Raise ConfigError for the first thing wrong with `cfg`; return None when it can run."""
    check_node(cfg, schema.RootConfig, "")
    check_data(cfg.data)
    check_task(cfg.task, cfg.model)
    from gpt_exp.model.build import check_model_config

    check_model_config(cfg.model, cfg.task.max_seq_len)


# ------------------------------------------------------------------------------------- the schema walk

def check_node(node: DictConfig, node_schema: type, path: str) -> None:
    fields = schema.schema_fields(node_schema)
    hints = typing.get_type_hints(node_schema)
    for key in node.keys():
        if key not in fields and not (path == "" and key in SKIPPED_ROOT_KEYS):
            raise unknown_key(node, node_schema, path, str(key))
    for name, spec in fields.items():
        full = join(path, name)
        if name not in node.keys():  # (`in node` is False for a `???` value too)
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{full} is not set: {spec.metadata['help']}. Fix: {full}=<{describe(hints[name], spec.metadata)}>.")
            continue  # the code's own default applies
        if OmegaConf.is_missing(node, name):
            raise ConfigError(f"{full}=???: required, {spec.metadata['help']}. "
                              f"Fix: {full}=<{describe(hints[name], spec.metadata)}>.")
        value = resolved(node, name, full)
        check_value(value, hints[name], spec.metadata, full)


def resolved(node: DictConfig, name: str, full: str) -> Any:
    try:
        return node[name]
    except OmegaConfBaseException as error:
        raw = OmegaConf.to_container(node, resolve=False).get(name)
        reason = str(error).splitlines()[0]
        raise ConfigError(f"{full}={raw}: cannot be resolved ({reason}). Fix: give {full} a value, "
                          f"or correct the interpolation.") from None


def check_value(value: Any, hint: Any, rules: dict, full: str) -> None:
    hint, optional = unwrap_optional(hint)
    if value is None:
        if not optional:
            raise ConfigError(f"{full}=null: a value is required ({rules['help']}). "
                              f"Fix: {full}=<{describe(hint, rules)}>.")
        return
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, DictConfig):
            raise wrong(full, value, "must be a group of keys, not a single value", hint, rules)
        node_schema = hint
        if "select" in rules:
            node_schema = rules["select"].get(value.get("_target_"))
            if node_schema is None:  # your own class (`_target_: mypkg.MyTask`): its keys are yours to check
                return
        check_node(value, node_schema, full)
        return
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        check_list(value, typing.get_args(hint)[0], rules, full)
    elif origin is dict:
        if not isinstance(value, DictConfig):
            raise wrong(full, value, "must be a mapping", hint, rules)
        item_hint = typing.get_args(hint)[1]
        for key in value.keys():
            check_value(value[key], item_hint, {"help": rules["help"]}, f"{full}.{key}")
    else:
        check_scalar(value, hint, rules, full)


def check_list(value: Any, item_hint: Any, rules: dict, full: str) -> None:
    if not isinstance(value, (ListConfig, list, tuple)):
        raise wrong(full, value, "must be a list", list, rules)
    if rules.get("length") is not None and len(value) != rules["length"]:
        raise wrong(full, value, f"must be a list of {rules['length']} values", list, rules)
    item_rules = {"help": rules["help"], **(rules.get("items") or {})}
    for i, item in enumerate(value):
        check_value(item, item_hint, item_rules, f"{full}[{i}]")


def check_scalar(value: Any, hint: Any, rules: dict, full: str) -> None:
    if hint is Any:
        return
    if hint is bool and not isinstance(value, bool):
        raise wrong(full, value, "must be true or false", hint, rules)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise wrong(full, value, "must be a whole number", hint, rules)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong(full, value, "must be a number", hint, rules)
        if not math.isfinite(value):
            raise wrong(full, value, "must be a finite number", hint, rules)
    if hint is str and not isinstance(value, str):
        # Hydra's override grammar reads `logger.project=2024` as a number; a path or name may well be one
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong(full, value, "must be a string", hint, rules)
        return
    check_range(value, hint, rules, full)


def check_range(value: Any, hint: Any, rules: dict, full: str) -> None:
    limits = [("min", lambda v, b: v >= b, ">="), ("max", lambda v, b: v <= b, "<="),
              ("gt", lambda v, b: v > b, ">"), ("lt", lambda v, b: v < b, "<")]
    for rule, ok, sign in limits:
        if rules.get(rule) is not None and not ok(value, rules[rule]):
            raise wrong(full, value, f"must be {sign} {number(rules[rule])}", hint, rules)
    choices = rules.get("choices")
    if choices:
        fold = (lambda v: str(v).lower()) if rules.get("casefold") else (lambda v: v)
        if fold(value) not in {fold(c) for c in choices}:
            near = nearest(str(value), [str(c) for c in choices])
            raise ConfigError(f"{full}={show(value)}: must be one of {', '.join(map(str, choices))}. "
                              f"Fix: {full}={near or choices[0]} ({rules['help']}).")


# ------------------------------------------------------------------------------------- messages

def wrong(full: str, value: Any, problem: str, hint: Any, rules: dict) -> ConfigError:
    return ConfigError(f"{full}={show(value)}: {problem}. Fix: {full}=<{describe(hint, rules)}> ({rules['help']}).")


def unknown_key(node: DictConfig, node_schema: type, path: str, key: str) -> ConfigError:
    valid = sorted(schema.schema_fields(node_schema))
    where = f"the {path} group" if path else "the top level of the config"
    near = nearest(key, valid)
    value = show(OmegaConf.to_container(node, resolve=False)[key])
    fix = f"{join(path, near)}={value} (the nearest key), or remove it" if near else "remove it, or spell one of those keys"
    return ConfigError(f"{join(path, key)}={value}: {where} has no key {key!r} (its keys: {', '.join(valid)}). "
                       f"Fix: {fix}.")


def describe(hint: Any, rules: dict) -> str:
    """'a number > 0 and <= 1', 'one of offline, online, disabled', 'a whole number >= 1'..."""
    hint, optional = unwrap_optional(hint)
    if rules.get("choices"):
        return "one of " + ", ".join(map(str, rules["choices"])) + (", or null" if optional else "")
    kind = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(hint)
    if kind is None:
        origin = typing.get_origin(hint)
        kind = "a list" if origin in (list, tuple) else "a group of keys" if dataclasses.is_dataclass(hint) else "a value"
        if rules.get("length"):
            kind = f"a list of {rules['length']} values"
    bounds = [f"{sign} {number(rules[rule])}" for rule, sign in (("min", ">="), ("gt", ">"), ("max", "<="), ("lt", "<"))
              if rules.get(rule) is not None]
    text = kind + (" " + " and ".join(bounds) if bounds else "")
    return text + (", or null" if optional else "")


def show(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    if isinstance(value, str):
        return repr(value)
    return str(value).replace("None", "null") if value is None or isinstance(value, (dict, list)) else str(value)


def number(bound: float) -> str:
    return f"{bound:,}".replace(",", "_") if isinstance(bound, int) and abs(bound) >= 10_000 else f"{bound:g}"


def nearest(word: str, options: list[str]) -> str | None:
    found = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return found[0] if found else None


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) is Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


# ------------------------------------------------------------------------------------- cross-key checks

def check_data(data: DictConfig) -> None:
    """Exactly one data source, its files present and readable: before any download or model work."""
    chosen = [key for key in ("name", "files", "hub_id") if data.get(key)]
    if len(chosen) != 1:
        raise ConfigError(
            f"data: set exactly one of data.name (a built-in dataset), data.files (your files) or "
            f"data.hub_id (a hub dataset); got {chosen or 'none'}. Fix: set the others to null, "
            f"e.g. data.name=null data.files.train=a.txt.")
    if data.get("files"):
        for split, path in data.files.items():
            if path:
                check_data_file(f"data.files.{split}", str(path))
    if data.get("hub_id"):
        from gpt_exp.hub import require_hub

        require_hub(data.hub_id, config_key="data.hub_id",
                    fix="give your own files (data.hub_id=null data.files.train=...) or a built-in data.name")
    if data.get("name"):
        from gpt_exp.data.sources import dataset_names

        known = dataset_names()
        if data.name not in known:
            near = nearest(str(data.name), known)
            raise ConfigError(f"data.name={data.name!r} is not a built-in dataset. Known: {', '.join(known)}. "
                              f"Fix: {'data=' + near + ', or ' if near else ''}for your own data "
                              f"data=text_files data.files.train=...")


def check_data_file(key: str, path: str) -> None:
    """The file-system facts a stat tells: exists, a regular file, not empty. Its content is checked after loading."""
    file = Path(path).expanduser()
    if not file.exists():
        raise ConfigError(f"{key}={path} does not exist. Fix: give the path of a .txt or .jsonl file.")
    if not file.is_file():
        kind = "a directory" if file.is_dir() else "not a regular file (a device, a pipe)"
        raise ConfigError(f"{key}={path} is {kind}. Fix: give the path of a .txt or .jsonl file.")
    if file.stat().st_size == 0:
        raise ConfigError(f"{key}={path} is empty. Fix: give a file with text in it.")


def check_task(task: DictConfig, model: DictConfig) -> None:
    """Task keys that must agree with each other (their ranges are in the schema)."""
    if task.get("label_names") is not None and len(task.label_names) < 2:
        raise ConfigError(f"task.label_names={show(task.label_names)}: a classifier needs at least 2 classes. "
                          f"Fix: list every class, or task.label_names=null to read them from the data.")
    if task.get("score_range") is not None:
        low, high = task.score_range
        if not high > low:
            raise ConfigError(f"task.score_range={show(task.score_range)}: must be [low, high] with high > low. "
                              f"Fix: task.score_range=[0.0,5.0] (the lowest and highest score of your data).")
    generation = task.get("generation")
    if generation is not None:
        if generation.min_new_tokens > generation.max_new_tokens:
            raise ConfigError(f"task.generation.min_new_tokens={generation.min_new_tokens} is above "
                              f"task.generation.max_new_tokens={generation.max_new_tokens}. "
                              f"Fix: task.generation.min_new_tokens<={generation.max_new_tokens}.")
        if generation.max_new_tokens >= task.max_seq_len - 1:
            raise ConfigError(f"task.generation.max_new_tokens={generation.max_new_tokens} leaves no room for the "
                              f"article in task.max_seq_len={task.max_seq_len}. Fix: lower max_new_tokens "
                              f"(a headline needs ~30) or raise task.max_seq_len.")
    if task.get("require_init_from") and not model.get("init_from"):
        raise ConfigError("model.init_from is not set, and this setup (zero-shot or fine-tune) needs pre-trained "
                          "weights rather than random ones. Fix: model.init_from=<a gpt_exp run directory, e.g. of "
                          "experiment=lm_peoples_daily, or an HF-format folder>.")


# ------------------------------------------------------------------------------------- Hydra's own errors

def composition_error_line(error: Exception, arguments: list[str]) -> str:
    """Hydra's multi-line composition errors as one line `<override>: <what is wrong>. Fix: <what to do>`."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    text = str(error)
    if isinstance(error, MissingConfigException) and "Could not find" in text:
        return missing_option_line(text, arguments)
    if isinstance(error, OverrideParseException):
        bad = unparsable_override(arguments)
        reason = text.splitlines()[-2] if len(text.splitlines()) > 1 else text
        return (f"{bad or ' '.join(arguments)}: cannot be parsed as an override ({reason}). Fix: write key=value, "
                f"quote values with spaces or brackets ('key=[1,2]', 'key=\"a b\"'); grammar: "
                f"https://hydra.cc/docs/advanced/override_grammar/basic/")
    exists = re.search(r"An item is already at '(?P<key>[^']+)'", text)
    if exists:
        override = next((a for a in arguments if a.lstrip("+").split("=")[0] == exists["key"]), exists["key"])
        plain = override.lstrip("+")
        return (f"{override}: {exists['key']} already exists, and a leading + adds a new key. "
                f"Fix: {plain} (without +) to change it.")
    full_key = getattr(error.__cause__, "full_key", None)
    if isinstance(error, ConfigCompositionException) and full_key and "Could not override" in text:
        return missing_key_line(str(full_key), arguments)
    return flat(text)


def missing_option_line(text: str, arguments: list[str]) -> str:
    found = re.search(r"Could not find '(?P<group>.+)/(?P<name>[^/']+)'", text)
    options = re.findall(r"^\t(\S+)$", text.split("Config search path:")[0], flags=re.M)
    if not found:
        return flat(text)
    group, name = found["group"], found["name"]
    near = nearest(name, options)
    fix = f"{group}={near}" if near else f"{group}=<one of them>"
    return (f"{group}={name}: no such option; Could not find '{group}/{name}' (the options of {group}: "
            f"{', '.join(options) or 'none'}). Fix: {fix}.")


def missing_key_line(full_key: str, arguments: list[str]) -> str:
    """`trainer.max_step=3` (no `+`): the nearest key of that group when the schema knows the group."""
    path, _, key = full_key.rpartition(".")
    override = next((a.lstrip("+~") for a in arguments if a.lstrip("+~").split("=")[0] == full_key), full_key)
    value = override.partition("=")[2]
    node_schema = schema_at(path)
    if node_schema is not None and key not in schema.schema_fields(node_schema):
        valid = sorted(schema.schema_fields(node_schema))
        near = nearest(key, valid)
        fix = f"{join(path, near)}={value} (the nearest key), or remove it" if near else "remove it"
        where = f"the {path} group" if path else "the top level of the config"
        return f"{override}: {where} has no key {key!r} (its keys: {', '.join(valid)}). Fix: {fix}."
    return (f"{override}: {path or 'the config'} has no key {key!r} in this composition (its node may be null, "
            f"or the key belongs to another option of the group). Fix: choose the group option that has it "
            f"(e.g. data=text_files for data.files.*), or remove it.")


def schema_at(path: str) -> type | None:
    """The schema of a group path like `trainer` or `task.generation`; None where it depends on `_target_`."""
    node_schema: Any = schema.RootConfig
    for part in [p for p in path.split(".") if p]:
        spec = schema.schema_fields(node_schema).get(part)
        if spec is None or "select" in spec.metadata:
            return None
        node_schema, _ = unwrap_optional(typing.get_type_hints(node_schema)[part])
        if not dataclasses.is_dataclass(node_schema):
            return None
    return node_schema


def unparsable_override(arguments: list[str]) -> str | None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for argument in arguments:
        if argument.startswith("-"):
            continue
        try:
            parser.parse_override(argument)
        except Exception:
            return argument
    return None


def flat(text: str) -> str:
    """Hydra's message on one line, without its config search path listing."""
    text = text.split("Config search path:")[0]
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
