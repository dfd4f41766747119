"""W&B can never hold a job: a server that dies mid-run and a refused port, against real CLI runs.

The server is `wandb_loopback.LoopbackWandb`, a W&B-compatible endpoint on loopback that this test starts and
stops; wandb's own service (wandb-core) talks to it as to api.wandb.ai, with a fake API key. Each run ends
by itself (the test never kills it) within logger.init_timeout + logger.finish_timeout + its training time,
its local records complete, and says what happened in one warning line that names the logger keys.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY
from wandb_loopback import API_KEY, LoopbackWandb, refused_port

from gpt_exp.tracking import first_line, read_metrics, start_failure_line

INIT_TIMEOUT, FINISH_TIMEOUT = 5, 5
# 20 steps with a log line every 2: time to stop the server while the run trains
RUN = [o for o in TINY if not o.startswith(("logger.mode=", "trainer.log_interval="))] + [
    "trainer.max_steps=20", "trainer.log_interval=2", "trainer.eval_interval=10", "trainer.checkpoint_interval=20",
    "trainer.test_batches=2", "task.sample_max_new_tokens=4", "trainer.compile=false", "logger.mode=online",
    f"logger.init_timeout={INIT_TIMEOUT}", f"logger.finish_timeout={FINISH_TIMEOUT}"]
# start-up (imports, data, tokenizer) and the run itself on 2 busy cores; without the bounds it never ends
MARGIN_S = 240


def start_online_run(tmp_path: Path, url: str, overrides: list[str]) -> tuple[subprocess.Popen, Path, Path]:
    run_dir, log_path = tmp_path / "run", tmp_path / "output.log"
    env = {**os.environ, "WANDB_BASE_URL": url, "WANDB_API_KEY": API_KEY, "GLOG_v": "3",
           "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"), "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
           "WANDB_DATA_DIR": str(tmp_path / "wandb-data")}
    env.pop("WANDB_SILENT", None)  # what a user sees: gpt_exp itself keeps wandb quiet
    env.pop("WANDB_MODE", None)
    with log_path.open("w") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "gpt_exp", *RUN, *overrides, f"hydra.run.dir={run_dir}"],
                                   cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True)
    return process, run_dir, log_path


def wait_for_exit(process: subprocess.Popen, started: float, bound: float, log_path: Path) -> float:
    try:
        process.wait(timeout=max(1.0, started + bound - time.time()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the run did not end within {bound:.0f} s:\n{log_path.read_text()[-3000:]}")
    return time.time()


def assert_records_complete(run_dir: Path, output: str) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished", output[-3000:]
    assert "test/loss" in summary["summary"] and summary["summary"]["best/loss"] is not None
    train_steps = [r["step"] for r in read_metrics(run_dir) if "train/loss" in r]
    assert train_steps == list(range(2, 21, 2))  # every row, each once
    assert (run_dir / "samples.jsonl").exists() and (run_dir / "loss.png").exists()
    return summary


def logged_at(output: str, marker: str) -> int:
    """Seconds of the day of the first log line holding `marker` (the console format is [HH:MM:SS][name])."""
    line = next(line for line in output.splitlines() if marker in line)
    hours, minutes, seconds = (int(part) for part in line[1:9].split(":"))
    return 3600 * hours + 60 * minutes + seconds


def warning_lines(output: str, marker: str) -> list[str]:
    return [line for line in output.splitlines() if marker in line]


def wandb_warnings(output: str) -> list[str]:
    """gpt_exp's lines about W&B, but the one that shows an online run's URL."""
    return [line for line in warning_lines(output, "W&B") if "W&B run: " not in line]


def wandb_services_of(pid: int) -> list[str]:
    """wandb-core processes still serving the process `pid` (wandb-core outlives a parent that is gone)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(w.endswith(b"wandb-core") for w in words) and str(pid).encode() in words:
            found.append(cmdline.parent.name)
    return found


@pytest.mark.slow  # a real 20-step online run: ~20 s on 2 cores
def test_a_server_that_dies_mid_run_costs_at_most_finish_timeout(tmp_path, shakespeare_excerpt):
    with LoopbackWandb() as server:
        started = time.time()
        process, run_dir, log_path = start_online_run(tmp_path, server.url, shakespeare_excerpt)
        while process.poll() is None and not read_metrics(run_dir) and time.time() < started + MARGIN_S:
            time.sleep(0.05)
        assert not (run_dir / "summary.json").exists(), "the run ended before the server stopped"
        assert "UpsertBucket" in server.requests  # the run really was online
        server.stop()
        ended = wait_for_exit(process, started, FINISH_TIMEOUT + MARGIN_S, log_path)
    output = log_path.read_text()
    assert process.returncode == 0, output[-3000:]
    summary = assert_records_complete(run_dir, output)
    # the local records were complete before W&B's finish was tried, which then took at most its bound
    assert ended - (run_dir / "summary.json").stat().st_mtime < FINISH_TIMEOUT + 15
    assert summary["wandb_url"].startswith(server.url) and summary["wandb_id"] in summary["wandb_url"]
    assert len(warning_lines(output, summary["wandb_url"])) == 1  # the URL, once
    warnings = wandb_warnings(output)  # the table logged at the end, or the finish, gets no answer
    assert len(warnings) == 1 and "logger.finish_timeout" in warnings[0] and "logger.mode=offline" in warnings[0]
    assert "Traceback" not in output and "wandb: " not in output, output[-3000:]
    time.sleep(2)
    assert wandb_services_of(process.pid) == []  # wandb's service ended with the run


@pytest.mark.slow  # a real 20-step run: ~20 s on 2 cores
def test_a_refused_port_costs_at_most_init_timeout_and_one_line(tmp_path, shakespeare_excerpt):
    url = refused_port()
    started = time.time()
    process, run_dir, log_path = start_online_run(tmp_path, url, shakespeare_excerpt)
    wait_for_exit(process, started, INIT_TIMEOUT + MARGIN_S, log_path)
    output = log_path.read_text()
    assert process.returncode == 0, output[-3000:]
    summary = assert_records_complete(run_dir, output)
    assert summary["wandb_url"] is None and summary["wandb_id"] is None
    warnings = wandb_warnings(output)
    assert len(warnings) == 1, output[-3000:]
    assert f"W&B unreachable at {url}" in warnings[0] and "logger.mode=offline" in warnings[0]
    assert "logger.init_timeout" in warnings[0] and "wandb.init(settings" not in output
    # W&B gave up after init_timeout: from the log line just before W&B starts to the warning
    assert logged_at(output, "] model: ") + INIT_TIMEOUT + 5 >= logged_at(output, "W&B unreachable")
    assert "Traceback" not in output and "wandb: " not in output, output[-3000:]
    time.sleep(2)
    assert wandb_services_of(process.pid) == []


# --- the warning itself -------------------------------------------------------------------------------

def test_start_failure_is_one_line_that_names_the_logger_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    error = RuntimeError("Timed out while retrying: connection refused\nConsider increasing the init_timeout "
                         "setting:\n  wandb.init(settings=wandb.Settings(init_timeout=...))")  # wandb 0.31's text
    line = start_failure_line(error, "online", 15, tmp_path / "metrics.jsonl")
    assert "\n" not in line and "wandb.init" not in line
    assert line.startswith("W&B unreachable at http://127.0.0.1:9 (RuntimeError: Timed out while retrying")
    assert "logger.mode=offline" in line and "logger.init_timeout (now 15 s)" in line
    assert first_line(ValueError("")) == "no message"
