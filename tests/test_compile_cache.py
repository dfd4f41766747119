"""The compile cache: a rerun loads the train step's graph and trains exactly as a run that compiles it."""
from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY, compose

from gpt_exp.run import compile_cache_folder
from gpt_exp.tracking import read_metrics
from gpt_exp.train.compile_cache import graph_key


def test_the_key_changes_with_what_builds_the_graph_only():
    base = graph_key(compose(TINY), 1024)
    for same in (["logger.mode=offline"], ["trainer.eval_interval=7", "trainer.log_interval=3"],
                 ["trainer.checkpoint_interval=9", "trainer.compile_cache=false"]):
        assert graph_key(compose(TINY + same), 1024) == base, same
    assert graph_key(compose(TINY + ["model.init_from=/some/run"]), 1024) == base  # weights are not the graph
    changed = [["optimizer.lr=1e-3"], ["model.n_layer=3"], ["model.dropout=0.2"], ["seed=5"],
               ["trainer.batch_size=4"], ["trainer.max_steps=7"], ["precision=fp16"], ["task.max_seq_len=32"]]
    keys = {graph_key(compose(TINY + change), 1024) for change in changed}
    assert len(keys) == len(changed) and base not in keys
    assert graph_key(compose(TINY), 1000) != base  # another vocabulary


def test_the_cache_is_off_when_asked_or_without_compile(tmp_path):
    assert compile_cache_folder(compose(TINY), tmp_path, 1024, 1).parent == tmp_path / "compile"
    assert compile_cache_folder(compose(TINY + ["trainer.compile_cache=false"]), tmp_path, 1024, 1) is None
    assert compile_cache_folder(compose(TINY + ["trainer.compile=false"]), tmp_path, 1024, 1) is None
    assert compile_cache_folder(compose(TINY), tmp_path, 1024, 2) is None  # data parallel: not yet


def _run(overrides: list[str], run_dir: Path) -> tuple[list[dict], str]:
    """One training in a fresh process (the cache is for later processes), its metrics and its log."""
    done = subprocess.run([sys.executable, "-m", "gpt_exp", *overrides, f"hydra.run.dir={run_dir}",
                           f"paths.output_dir={run_dir}"], cwd=ROOT, env={**os.environ, "HYDRA_FULL_ERROR": "1"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return read_metrics(run_dir), done.stdout + done.stderr


def _numbers(rows: list[dict]) -> list[tuple]:
    return [(r["step"], r.get("train/loss"), r.get("train/grad_norm"), r.get("eval/loss")) for r in rows
            if "train/loss" in r or "eval/loss" in r]


@pytest.mark.slow
def test_a_loaded_graph_trains_exactly_as_a_compiled_one(tmp_path, shakespeare_excerpt):
    # a seed no other run used: this test's graph is not in the cache yet
    seed = random.randrange(10**6, 10**7)
    common = TINY + shakespeare_excerpt + [f"seed={seed}", "trainer.max_steps=6", "trainer.log_interval=1",
                                           "trainer.eval_interval=3", "task.sample_prompts=[]"]
    scratch, scratch_log = _run(common + ["trainer.compile_cache=false"], tmp_path / "scratch")
    cold, cold_log = _run(common, tmp_path / "cold")
    saved = re.search(r"compiled and saved to (\S+)", cold_log)
    assert saved and "compile cache" not in scratch_log, cold_log[-2000:]
    try:
        # the pre-trained arm of an ablation: other weights, the same graph
        pretrained = common + [f"model.init_from={tmp_path / 'scratch'}"]
        reference, _ = _run(pretrained + ["trainer.compile_cache=false"], tmp_path / "reference")
        warm, warm_log = _run(pretrained, tmp_path / "warm")
    finally:
        shutil.rmtree(Path(saved.group(1)).parent, ignore_errors=True)
    assert f"loaded from {saved.group(1)}" in warm_log, warm_log[-2000:]
    assert _numbers(scratch) and _numbers(cold) == _numbers(scratch)  # saving changes nothing
    # the loaded graph updates the weights, moments and loss scale it is given: bit for bit the compiled run's
    assert _numbers(reference) != _numbers(scratch) and _numbers(warm) == _numbers(reference)
    seconds = [float(re.search(r"first train step ([\d.]+) s", log).group(1)) for log in (cold_log, warm_log)]
    print(f"first train step: compiled {seconds[0]:.1f} s, loaded {seconds[1]:.1f} s")
