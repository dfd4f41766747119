"""Compile the train step once per shape: MindSpore's compile cache, keyed so a changed run never reuses a graph.

MindSpore 2.10 can save a compiled graph and load it in a later process (`enable_compile_cache`,
`compile_cache_path`). Measured here (gpt2-tiny, vocab 4,096): a repeated run's first step 0.47 s instead
of 6.9 s. Two things make it safe only under conditions this module enforces:
- The loaded graph binds its weights by name to what `jit` hands the graph executor. It does that for a
  Cell (`set_weights_values(cell.parameters_dict())`), not for a plain function: a function-`jit` train step
  loaded from the cache trained nothing (loss stuck at ln(vocab), gradient norm 0). So the cached train step
  is a Cell holding the network, the optimizer and the loss scale (gpt_exp/train/step.py).
- MindSpore names its graphs by the order they are compiled in a process (compile_cache_0.mindir, ...) and
  checks only the source files of the entry script's imports outside sys.path (gpt_exp on PYTHONPATH is not
  checked). So each cache folder holds the train step alone (the cache is on only while it compiles), and the
  folder is named by a hash of everything that reaches the graph: the config (learning-rate schedule, dropout,
  seed, shapes, ...), the vocabulary, the input shapes, MindSpore's version and gpt_exp's own source.
- MindSpore keeps the first `compile_cache_path` of a process and numbers the cached graphs of a process
  from there: a second cached compile in the same process (the next job of a multirun that runs its jobs in
  one process, Hydra's basic launcher or joblib's reused workers) wrote `compile_cache_1.mindir` into the
  first, by then renamed, folder and loaded nothing. So the cache serves the first train step of a process
  only; later ones compile as before (correct either way, measured: identical losses).
A folder is written under a temporary name and renamed once complete, so a parallel sweep job never reads a
half-written graph.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import mindspore
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
_used_in_process = False  # MindSpore takes one compile_cache_path per process (see above)

# config parts that never reach the compiled train step: where and how often things are logged or saved, and
# where the initial weights come from (the graph binds the Parameters it is given; their shapes stay in the
# key through model.n_layer etc., which model.init_from writes into the config). So the ablation's pre-trained
# and from-scratch arms share one graph.
_OUTSIDE_THE_GRAPH = {
    None: ("logger", "paths", "hydra", "ablation"),
    "model": ("name", "init_from"),
    "trainer": ("eval_interval", "eval_batches", "test_batches", "log_interval", "checkpoint_interval",
                "keep_checkpoints", "resume", "compile_cache"),
}


def graph_key(cfg: DictConfig, vocab_size: int) -> str:
    """A hash of everything the train step's graph is built from, except the input shapes (see cached_step)."""
    config = {name: _plain(cfg[name]) for name in cfg if name not in _OUTSIDE_THE_GRAPH[None]}
    for section, keys in _OUTSIDE_THE_GRAPH.items():
        for key in keys if section else ():
            (config.get(section) or {}).pop(key, None)
    described = {"config": config, "vocab_size": vocab_size, "mindspore": mindspore.__version__,
                 "gpt_exp": _source_hash()}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _plain(value):
    if not OmegaConf.is_config(value):
        return value
    try:
        return OmegaConf.to_container(value, resolve=True)
    except Exception:  # noqa: BLE001 - e.g. a ${hydra:...} outside a Hydra app: hash the expression itself
        return OmegaConf.to_container(value, resolve=False)


@functools.lru_cache(maxsize=1)
def _source_hash() -> str:
    """gpt_exp's Python source: a changed model or step never loads a graph compiled from older code."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cached_step(step, folder: Path):
    """`step` whose first call (its compile) goes through MindSpore's compile cache under `folder`/<shapes>."""
    first = True

    def step_with_cache(*arrays):
        nonlocal first
        if not first:
            return step(*arrays)
        first = False
        shapes = json.dumps([[list(a.shape), str(a.dtype)] for a in arrays])
        target = folder / hashlib.sha256(shapes.encode()).hexdigest()[:12]
        return _compile_through(step, arrays, target)

    return step_with_cache


def _compile_through(step, arrays, target: Path):
    global _used_in_process
    if _used_in_process:
        log.info("compile cache: not for a second train step in this process (MindSpore keeps its first cache "
                 "path); compiling")
        return step(*arrays)
    _used_in_process = True
    reuse = _complete(target)
    where = target if reuse else Path(tempfile.mkdtemp(prefix=".building-", dir=_parent(target)))
    start = time.perf_counter()
    mindspore.set_context(enable_compile_cache=True, compile_cache_path=str(where))
    try:
        result = step(*arrays)
    finally:
        mindspore.set_context(enable_compile_cache=False)  # the eval step and generation stay uncached
    mindspore.runtime.synchronize()  # the step runs asynchronously: time it to its end, as a user waits for it
    if not reuse:
        _publish(where, target)
    log.info("compile cache: first train step %.1f s, graph %s %s", time.perf_counter() - start,
             "loaded from" if reuse else "compiled and saved to", target)
    return result


def _parent(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent


def _complete(folder: Path) -> bool:
    return any(folder.glob("rank_*/graph_cache/compile_dependency.hash")) and any(
        folder.glob("rank_*/graph_cache/*.mindir"))


def _publish(built: Path, target: Path) -> None:
    """Rename the finished folder into place; if a parallel job was first, keep its folder."""
    if not _complete(built):
        log.warning("compile cache: MindSpore wrote no graph to %s; nothing is cached", built)
        shutil.rmtree(built, ignore_errors=True)
        return
    try:
        os.rename(built, target)
    except OSError:
        shutil.rmtree(built, ignore_errors=True)
