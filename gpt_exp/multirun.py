"""What a multirun's jobs are called, how they group, and which of them failed.

A job's name is its config's `run_name` plus the values of the keys that vary across the sweep
(`gpt2-tiny-lm-fp32[seed=1]`): keys that are the same in every job say nothing about the job. Hydra
gives each job only its own overrides, so the sweep's varying keys are found once, in the parent
process, by `MultirunRecorder.on_multirun_start` (a Hydra callback, conf/hydra/default.yaml), from the
multirun's command line and the sweeper's params, and written beside the jobs for every launcher.
`on_multirun_end` collects the jobs that failed, so that the command exits non-zero.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from hydra.experimental.callback import Callback

VARYING_FILE = "varying_keys.json"
DATE_DIR = re.compile(r"\d{4}-\d{2}-\d{2}$")
# set in the parent process by MultirunRecorder.on_multirun_end
failed_jobs: list[dict] = []
jobs_run: list[dict] = []


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def varying_keys(task_overrides: list[str], sweeper_params: dict | None) -> list[str]:
    """The keys a sweep varies: sweeps on its command line (`seed=1,2`, `optimizer.lr=interval(...)`) and
    in the sweeper's params, except a params key that the command line pins to one value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    varying, pinned = set(), set()
    for override in parser.parse_overrides(list(task_overrides)):
        (varying if override.is_sweep_override() else pinned).add(override.key_or_group)
    for key, value in (sweeper_params or {}).items():
        key = _key(str(key))
        if key in pinned:
            continue
        try:
            sweeps = parser.parse_override(f"{key}={value}").is_sweep_override()
        except Exception:  # a sweeper-specific form: better one key too many in a name than two equal names
            sweeps = True
        if sweeps:
            varying.add(key)
    return sorted(varying)


def job_label(job_overrides: list[str], varying: list[str]) -> str:
    """`seed=1,trainer.batch_size=8`: this job's values of the varying keys, in key order."""
    values = {_key(o): o.split("=", 1)[1] for o in job_overrides if "=" in o}
    return ",".join(f"{key}={_short(values[key])}" for key in varying if key in values)


def _short(value: str) -> str:
    """A sampled float such as 0.0012345678901 reads 0.001235; values as the user wrote them stay."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if len(value) > 8 and not value.lstrip("-").isdigit() else value


def job_name(run_name: str, job_overrides: list[str], varying: list[str]) -> str:
    label = job_label(job_overrides, varying)
    return f"{run_name}[{label}]" if label else run_name


def sweep_group(sweep_dir: str | Path) -> str:
    """The W&B group of a sweep: unique by its start, `2026-12-03_05-16-00` for multirun/2026-12-03/05-16-00
    (and `2026-12-03_05-16-00_grid` for a preset's `..._grid`); a directory of the user's own naming keeps
    its name."""
    sweep_dir = Path(sweep_dir)
    if DATE_DIR.match(sweep_dir.parent.name):
        return f"{sweep_dir.parent.name}_{sweep_dir.name}"
    return sweep_dir.name


def sweep_varying_keys(sweep_dir: str | Path, sweeper_params: dict | None) -> list[str]:
    """The varying keys the parent process recorded; without them (a launcher that skips callbacks), the
    sweeper's params alone."""
    path = Path(sweep_dir) / VARYING_FILE
    if path.exists():
        return json.loads(path.read_text())["varying"]
    return varying_keys([], sweeper_params)


def collect_jobs(sweep_dir: Path, since: float) -> list[dict]:
    """The jobs of this multirun (started after `since`), each with its status from summary.json."""
    jobs = []
    for marker in sorted(sweep_dir.glob("**/.hydra/config.yaml"), key=lambda p: _job_order(p.parent.parent)):
        job_dir = marker.parent.parent
        if marker.stat().st_mtime < since:  # a job of an earlier multirun in the same directory
            continue
        summary_path = job_dir / "summary.json"
        record = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        jobs.append({"job_dir": str(job_dir), "name": record.get("run_name") or job_dir.name,
                     "status": record.get("status") or "failed",
                     "error": record.get("error") or ("" if summary_path.exists() else "no summary.json")})
    return jobs


def _job_order(job_dir: Path):
    number = job_dir.name.split("_", 1)[0]
    return (int(number), job_dir.name) if number.isdigit() else (1 << 30, job_dir.name)


def failure_line(failures: list[dict], total: int | None = None, what: str = "multirun") -> str:
    """One line: how many failed, each job with its error, and where its error.txt is."""
    def one(failure: dict) -> str:
        error = failure["error"].splitlines()[0] if failure["error"] else failure["status"]
        return f"{failure['name']} ({error[:200]}; {Path(failure['job_dir']) / 'error.txt'})"

    counted = f"{len(failures)} of {total} jobs" if total else f"{len(failures)} job{'s' * (len(failures) != 1)}"
    return f"{what}: {counted} failed: " + "; ".join(one(f) for f in failures)


class MultirunRecorder(Callback):
    """Hydra callback, in the process that runs the sweeper."""

    def __init__(self) -> None:
        self.started = 0.0

    def on_multirun_start(self, config, **kwargs) -> None:
        failed_jobs.clear()
        jobs_run.clear()
        self.started = time.time() - 2  # file times are coarse on some file systems
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        params = config.hydra.sweeper.get("params")
        varying = varying_keys(list(config.hydra.overrides.task), dict(params) if params else None)
        (sweep_dir / VARYING_FILE).write_text(json.dumps({"varying": varying}) + "\n")

    def on_multirun_end(self, config, **kwargs) -> None:
        jobs_run[:] = collect_jobs(Path(config.hydra.sweep.dir), self.started)
        failed_jobs[:] = [job for job in jobs_run if job["status"] != "finished"]
