"""`gpt_exp.tools.compare` on run records laid out as the runner and Hydra write them.

The end-to-end path (a real multirun, then compare) is in test_sweeps.py; here the records are
written by hand so every case (failed, unfinished, mixed metrics) is covered in milliseconds.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from gpt_exp.tools.compare import compare, find_runs, main, swept_keys, load_run

TINY_OVERRIDES = ["model.n_layer=2", "logger.mode=disabled", "device=cpu"]


def write_run(path: Path, overrides: list[str], best: float | None, status: str = "finished", steps: int = 20,
              lr: float = 1e-3, metric: str = "loss", greater: bool = False) -> Path:
    """A run directory as gpt_exp.run.train and Hydra leave it."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    rows = []
    for step in range(5, steps + 1, 5):
        loss = 7.0 * math.exp(-lr * 300 * step / steps)
        rows.append({"step": step, "time": 1000.0 + step, "train/loss": loss, "train/lr": lr,
                     "train/tokens_per_sec": 1000.0 if step == 5 else 5000.0 + step})
        if step % 10 == 0:
            rows.append({"step": step, "time": 1000.5 + step, "eval/loss": loss + 0.1, "eval/perplexity": math.exp(loss)})
    if status == "failed":
        rows = rows[:1]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if status == "incomplete":
        return path
    record = {"status": status, "run_name": f"gpt2-tiny-lm-fp32[{','.join(overrides)}]"}
    if status == "failed":
        record["error"] = "ValueError: only 6 training samples for trainer.batch_size=100000"
    else:
        record.update(main_metric=f"eval/{metric}", greater_is_better=greater,
                      summary={f"best/{metric}": best, "best/step": steps, "test/loss": best + 0.05})
    (path / "summary.json").write_text(json.dumps(record))
    return path


@pytest.fixture
def sweep(tmp_path) -> Path:
    """A 2 x 2 multirun (model x lr) with one more job that crashed, as Hydra lays it out."""
    root = tmp_path / "multirun" / "2026-01-01" / "12-00-00_grid"
    jobs = [("gpt1-tiny", 1e-3, 5.1), ("gpt1-tiny", 3e-3, 4.2), ("gpt2-tiny", 1e-3, 5.0), ("gpt2-tiny", 3e-3, 3.9)]
    for num, (model, lr, best) in enumerate(jobs):
        write_run(root / f"{num}_{model}-lm-fp32", [f"model={model}", f"optimizer.lr={lr}", *TINY_OVERRIDES],
                  best, lr=lr)
    write_run(root / "4_gpt2-tiny-lm-fp32", ["model=gpt2-tiny", "optimizer.lr=0.1", *TINY_OVERRIDES], None,
              status="failed")
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_finds_every_job_of_a_sweep_in_job_order(sweep):
    runs = find_runs([sweep])
    assert [p.name for p in runs] == ["0_gpt1-tiny-lm-fp32", "1_gpt1-tiny-lm-fp32", "2_gpt2-tiny-lm-fp32",
                                      "3_gpt2-tiny-lm-fp32", "4_gpt2-tiny-lm-fp32"]
    # a run dir given directly, twice, or inside a given sweep is listed once
    assert find_runs([runs[1], sweep / "1_gpt1-tiny-lm-fp32"]) == [runs[1]]
    assert len(find_runs([sweep, runs[0]])) == 5


def test_swept_keys_are_the_overrides_that_differ(sweep):
    runs = [load_run(p) for p in find_runs([sweep])]
    assert swept_keys(runs) == ["model", "optimizer.lr"]  # not the shared TINY overrides, not logger.mode


def test_table_ranks_runs_and_records_failures(sweep, tmp_path):
    written = compare([sweep], tmp_path / "out")
    with written["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] + "/" + r["optimizer.lr"] for r in rows] == [
        "gpt2-tiny/0.003", "gpt1-tiny/0.003", "gpt2-tiny/0.001", "gpt1-tiny/0.001", "gpt2-tiny/0.1"]
    assert [float(r["best/loss"]) for r in rows[:4]] == [3.9, 4.2, 5.0, 5.1]  # lower loss first
    assert rows[-1]["status"] == "failed" and "batch_size=100000" in rows[-1]["error"]
    assert float(rows[0]["tokens/s"]) == pytest.approx(5015.0)  # median, without the compile-bound first window
    assert rows[0]["steps"] == "20" and float(rows[0]["final eval/loss"]) > 0
    assert "optimizer.lr=0.003" in rows[0]["overrides"] and rows[0]["run_dir"].endswith("3_gpt2-tiny-lm-fp32")

    markdown = written["markdown"].read_text()
    assert "Swept: model, optimizer.lr" in markdown and "best/loss (lower is better)" in markdown
    assert markdown.count("\n| ") == 6  # header + 5 runs
    assert "failed" in markdown and "batch_size=100000" in markdown


def test_plots_overlay_curves_and_show_the_metric_against_each_swept_key(sweep, tmp_path):
    written = compare([sweep], tmp_path / "out")
    names = sorted(p.name for p in written["plots"])
    assert names == ["loss_by_job.png", "loss_curves.png", "loss_vs_model.png", "loss_vs_optimizer.lr.png"]
    for plot in written["plots"]:
        assert plot.stat().st_size > 10_000, plot


def test_mixed_tasks_and_unfinished_runs(tmp_path):
    write_run(tmp_path / "lm", ["task=lm"], 4.0)
    write_run(tmp_path / "clf", ["task=classification"], 0.81, metric="accuracy", greater=True)
    write_run(tmp_path / "killed", ["task=lm", "seed=2"], None, status="incomplete")
    written = compare([tmp_path], tmp_path / "out")
    statuses = {r.path.name: r.status for r in written["runs"]}
    assert statuses == {"lm": "finished", "clf": "finished", "killed": "incomplete"}
    assert written["runs"][-1].path.name == "killed"
    markdown = written["markdown"].read_text()
    assert "best/accuracy (higher is better)" in markdown and "best/loss (lower is better)" in markdown
    header = written["csv"].read_text().splitlines()[0]
    assert "best/accuracy" in header and "best/loss" in header


def test_command_lines(sweep, tmp_path):
    env = {**os.environ, "GLOG_v": "3"}
    for command in ([sys.executable, "-m", "gpt_exp.tools.compare", str(sweep)],
                    [sys.executable, "-m", "gpt_exp", "compare", str(sweep), "--out", str(tmp_path / "cli")]):
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "| run | status | model | optimizer.lr |" in done.stdout
    assert (sweep / "comparison" / "comparison.md").exists()  # one sweep dir: the table goes beside its runs
    assert (tmp_path / "cli" / "comparison.csv").exists()
    assert main([str(tmp_path / "nothing-here")]) == 2
