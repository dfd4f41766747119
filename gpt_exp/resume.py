"""Continuing a run (`trainer.resume=<dir>`) so that its records read as if it had never stopped.

A kill lands anywhere between two checkpoints, after log lines the checkpoint does not know
about. Before training continues, the local record (`metrics.jsonl`) and the W&B run are brought
back to the checkpoint's step, so that no step is recorded twice and none is missing.

W&B cannot delete rows, offline or online. Measured with wandb 0.31 offline: `resume="allow"` with
the same id writes a second `offline-run-*` directory whose history starts again at whatever step
is logged (steps 15, 20 after 5, 10, 15: step 15 twice once synced); `resume="must"` keeps no history
offline; `resume_from="<id>?_step=10"` (rewind) and `fork_from` only record a branch point in the new
file, which a server applies at sync time if it supports rewind, and the old file still holds the
rows after it. So:
- offline, nothing synced yet (the default): the W&B record is rebuilt. The run's old `offline-run-*`
  directories move to `wandb/replaced/` (out of `wandb sync`'s way), a new one with the same run id
  gets every row of the cut `metrics.jsonl` again, then the new steps: one W&B run, each step once,
  the same numbers as `metrics.jsonl`.
- online, or offline files already synced: the run continues (`resume="allow"`); the rows the
  server lacks up to the checkpoint are sent from `metrics.jsonl`, and steps the server already
  holds (its last step, or the local files' last step) are not sent again.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gpt_exp.errors import ConfigError
from gpt_exp.train import checkpoint

log = logging.getLogger("gpt_exp")

# Keys a resume may change: how long to train, where from, how W&B records. Everything else is the run.
MAY_CHANGE = {"trainer.max_steps", "trainer.resume", "logger.mode", "logger.init_timeout", "logger.finish_timeout"}
# Keys that say where files go or how the run is labelled, not what it trains.
NOT_COMPARED = ("paths.", "run_name")
RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoints")  # what makes a directory hold a run
KEEP_ON_OVERWRITE = (".hydra",)  # Hydra's record of the current invocation (its log file is kept too)


# ----------------------------------------------------------------------------- the config of a resumed run

def saved_config(resume_dir: Path) -> DictConfig:
    path = resume_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"trainer.resume={resume_dir}: the directory has no config.yaml. "
                          f"Fix: give the directory of a gpt_exp run")
    return OmegaConf.load(path)


def resumed_config(given: DictConfig, defaults: DictConfig, overridden: list[str] = ()) -> DictConfig:
    """The config of `trainer.resume=<dir> [overrides]`: the run's own config.yaml, with only the keys of
    MAY_CHANGE taken from the command line. What the command line set is every key under `overridden`
    (the keys and groups of its overrides) and every key that differs from `defaults` (the config composed
    with no overrides: what a preset such as debug=smoke changed); any of them outside MAY_CHANGE must
    agree with the run."""
    resume_dir = Path(given.trainer.resume)
    saved = saved_config(resume_dir)
    given_flat, default_flat, saved_flat = _flat(given), _flat(defaults), _flat(saved)
    changed = {k for k, v in given_flat.items() if k not in default_flat or default_flat[k] != v}
    changed |= {k for k in given_flat for o in overridden if k == o or k.startswith(o + ".")}
    for key in _names_first(changed):
        if key in MAY_CHANGE or key.startswith(NOT_COMPARED):
            continue
        was = saved_flat.get(key, default_flat.get(key))
        if was != given_flat[key]:
            raise _changed_key(resume_dir, key, was, given_flat[key])
    effective = OmegaConf.to_container(saved, resolve=True)
    for group in ("trainer", "logger"):  # keys added to gpt_exp since the run was saved get their defaults
        effective[group] = {**OmegaConf.to_container(given[group], resolve=True), **effective.get(group, {})}
    effective["paths"] = OmegaConf.to_container(given.paths, resolve=True)  # this machine's cache, not the old one's
    effective = OmegaConf.create(effective)
    for key in changed:
        if key in MAY_CHANGE:
            OmegaConf.update(effective, key, given_flat[key], merge=False)
    return effective


def check_same_run(cfg: DictConfig, resume_dir: Path) -> None:
    """Refuses a resume whose config would train another run than the one in `resume_dir`."""
    saved_flat, given_flat = _flat(saved_config(resume_dir)), _flat(cfg)
    for key in _names_first(saved_flat.keys() & given_flat.keys()):
        if key in MAY_CHANGE or key.startswith(NOT_COMPARED):
            continue
        if saved_flat[key] != given_flat[key]:
            raise _changed_key(resume_dir, key, saved_flat[key], given_flat[key])


def _changed_key(resume_dir: Path, key: str, was, given) -> ConfigError:
    return ConfigError(f"{key}={_show(given)}: the run in {resume_dir} was trained with {key}={_show(was)}, "
                       f"and a resume continues that run. Fix: leave {key} as it was (a resume may change only "
                       f"trainer.max_steps and logger.mode), or start a new run in a new directory")


def _names_first(keys) -> list[str]:
    """Sorted, with each group's `name` first: another model is reported as model.name, not model.arch."""
    return sorted(keys, key=lambda k: (not k.endswith(".name"), k))


def _show(value) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _flat(cfg: DictConfig) -> dict:
    """{'model.n_layer': 2, ...}: every leaf of the resolved config; lists are leaves."""
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


# ----------------------------------------------------------------------------- run directories

def refuse_existing_run(run_dir: Path, key: str) -> None:
    """A new run never writes into a directory that already holds one (two runs would mix in one record)."""
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if found:
        raise ConfigError(f"{key}={run_dir}: the directory already holds a run ({', '.join(found)}). "
                          f"Fix: give a new directory, continue that run with trainer.resume={run_dir}, "
                          f"or set paths.overwrite=true to delete it first")


def clear_run_dir(run_dir: Path) -> None:
    """paths.overwrite=true: deletes an earlier run's files, keeping Hydra's record and log of this invocation."""
    if not run_dir.is_dir():
        return
    for entry in run_dir.iterdir():
        if entry.name in KEEP_ON_OVERWRITE or entry.suffix == ".log":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    log.info("paths.overwrite=true: cleared the earlier run in %s", run_dir)


@contextmanager
def failures_recorded(run_dir: Path):
    """A resume that fails leaves its error in the run's records (error.txt, summary.json: failed),
    keeping the run's earlier summary under "previous"."""
    try:
        yield
    except Exception as error:
        if not any((run_dir / name).exists() for name in RUN_FILES):  # not a run: nothing of it to record in
            raise
        summary_path = run_dir / "summary.json"
        previous = json.loads(summary_path.read_text()) if summary_path.is_file() else None
        (run_dir / "error.txt").write_text("".join(traceback.format_exception(error)))
        summary_path.write_text(json.dumps({"status": "failed", "stage": "resume",
                                            "error": f"{type(error).__name__}: {error}", "previous": previous},
                                           indent=2, ensure_ascii=False))
        raise


# ----------------------------------------------------------------------------- checkpoint and local records

def load_newest_good(state: checkpoint.TrainState, folder: Path) -> tuple[dict, Path]:
    """Loads the newest checkpoint that passes its checksum; damaged newer ones are named and deleted."""
    removed = checkpoint.remove_temp_files(folder)
    if removed:
        log.info("removed %d temp file(s) of an interrupted save: %s", len(removed), ", ".join(p.name for p in removed))
    damaged = []
    for path in checkpoint.candidates(folder):
        try:
            record = checkpoint.load(state, path)
        except checkpoint.CheckpointError as error:
            log.warning("%s; trying the checkpoint before it", error)
            damaged.append(path)
            continue
        for bad in damaged:  # the next save of that step writes it again
            bad.unlink(missing_ok=True)
        if damaged:
            log.warning("resuming from %s (step %d) instead", path.name, record["step"])
        return record, path
    reasons = f" (damaged: {', '.join(p.name for p in damaged)})" if damaged else ""
    raise ConfigError(f"trainer.resume={folder.parent}: no checkpoint in {folder} can be read{reasons}. "
                      f"Fix: start a new run, or restore a checkpoint from a backup")


def cut_metrics(run_dir: Path, step: int) -> int:
    """Rewrites metrics.jsonl (atomically) with the rows of steps <= `step` and without the final test
    rows of an earlier finish; returns how many rows were dropped."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the half-written last line of a kill
            continue
        metrics = [k for k in row if k not in ("step", "time")]
        if row["step"] <= step and not all(k.startswith("test/") for k in metrics):
            kept.append(line)
    tmp = path.with_name(f".tmp-{os.getpid()}-metrics.jsonl")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)
    return len(lines) - len(kept)


def rows_by_step(run_dir: Path, after: int | None) -> list[tuple[int, dict]]:
    """metrics.jsonl merged per step (W&B keeps one history row a step), for steps > `after`."""
    from gpt_exp.tracking import read_metrics

    merged: dict[int, dict] = {}
    for row in read_metrics(run_dir):
        if after is None or row["step"] > after:
            values = {k: v for k, v in row.items() if k not in ("step", "time") and v is not None}
            merged.setdefault(row["step"], {}).update(values)
    return sorted(merged.items())


# ----------------------------------------------------------------------------- W&B

@dataclass(frozen=True)
class WandbResume:
    """How a resumed run meets its W&B record."""

    run_id: str | None
    continues: bool  # resume="allow": the server (or synced files) hold the earlier steps
    last_step: int | None  # the last step W&B holds already (None: nothing, or the server tells at init)


def plan_wandb(run_dir: Path, run_id: str | None, mode: str) -> WandbResume:
    files = sorted((run_dir / "wandb").glob("*run-*/run-*.wandb"))
    if mode == "disabled" or run_id is None:
        return WandbResume(run_id, False, None)
    synced = [f for f in files if f.with_name(f.name + ".synced").exists()]
    if mode == "offline" and not synced:
        replaced = run_dir / "wandb" / "replaced"
        for folder in {f.parent for f in files}:
            replaced.mkdir(parents=True, exist_ok=True)
            os.replace(folder, replaced / folder.name)
        if files:
            log.info("W&B: the earlier offline records of run %s moved to %s; the new one gets every step of "
                     "metrics.jsonl once", run_id, replaced)
        return WandbResume(run_id, False, None)
    return WandbResume(run_id, True, last_logged_step(files) if mode == "offline" else None)


def last_logged_step(files: list[Path]) -> int | None:
    from gpt_exp.wandb_records import read_run

    steps = [row["_step"] for f in files for row in read_run(f)["history"] if "_step" in row]
    return max(steps) if steps else None
