"""Every metric goes to a local `metrics.jsonl` and, unless disabled, to a W&B run.

The local file is the record that `gpt_exp.tools.compare` reads, so comparing runs needs no W&B
server; W&B is a mirror for dashboards. A failing W&B never stops training: it is switched off
with a warning and the local record goes on. Nor can it hold a job: starting W&B waits at most
`logger.init_timeout`, finishing it at most `logger.finish_timeout` (then its service is torn down, so
no exit handler of wandb keeps the process alive), and the local records are complete before that.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class RunTracker:
    def __init__(self, cfg: DictConfig, run_dir: Path, name: str, group: str | None, resume_id: str | None = None,
                 wandb_resume=None):
        """`wandb_resume` (gpt_exp.resume.WandbResume) says how a resumed run meets its earlier W&B record."""
        self.run_dir = run_dir
        self.metrics_path = run_dir / "metrics.jsonl"
        self.summary: dict = {}
        self.wandb_run = None
        self.wandb_url: str | None = None  # an online run's page
        self.finish_timeout = float(cfg.logger.get("finish_timeout", 30.0))
        self.wandb_failed = False  # a failing W&B gets one warning line per run
        self.run_id = wandb_resume.run_id if wandb_resume else resume_id
        self.continues = bool(wandb_resume and wandb_resume.continues)
        self.wandb_last_step = wandb_resume.last_step if wandb_resume else None  # W&B holds these steps already
        logger = cfg.logger
        if logger.mode != "disabled":
            self.wandb_run = self._start_wandb(cfg, name, group, self.run_id)
            if self.wandb_run is not None:
                self.run_id = self.wandb_run.id
                self.wandb_url = online_url(self.wandb_run)
                if self.wandb_url:
                    log.info("W&B run: %s", self.wandb_url)
                if self.continues and self.wandb_run.resumed and self.wandb_run.starting_step > 0:
                    self.wandb_last_step = self.wandb_run.starting_step - 1  # online: the server's last step

    def _start_wandb(self, cfg: DictConfig, name: str, group: str | None, resume_id: str | None):
        logger = cfg.logger
        init_timeout = float(logger.get("init_timeout", 15.0))
        try:
            wandb = import_quiet_wandb()
            return wandb.init(
                project=logger.project, entity=logger.get("entity"), mode=logger.mode,
                dir=str(self.run_dir), name=name, group=logger.get("group") or group,
                job_type=cfg.task.name, tags=list(logger.get("tags") or []), notes=logger.get("notes"),
                config=OmegaConf.to_container(cfg, resolve=True), id=resume_id,
                resume="allow" if self.continues else None, reinit="finish_previous",
                settings=wandb.Settings(init_timeout=init_timeout, silent=True))
        except Exception as error:  # no account, no network, a broken install: train on, record locally
            log.warning("%s", start_failure_line(error, logger.mode, init_timeout, self.metrics_path))
            return None

    def log(self, metrics: dict, step: int) -> None:
        clean = {k: (float(v) if v is not None else None) for k, v in metrics.items()}
        with self.metrics_path.open("a") as f:
            f.write(json.dumps({"step": step, "time": time.time(), **_json_safe(clean)}) + "\n")
        if self.wandb_last_step is None or step > self.wandb_last_step:  # W&B keeps each step once
            self._wandb("log", clean, step=step)

    def replay(self, rows: list[tuple[int, dict]]) -> None:
        """Sends rows of metrics.jsonl that W&B lacks (a resumed run's earlier steps), W&B only."""
        for step, values in rows:
            if self.wandb_last_step is None or step > self.wandb_last_step:
                self._wandb("log", values, step=step)

    def log_table(self, key: str, columns: list[str], rows: list[list], step: int | None = None) -> None:
        """The local file first. W&B logs a table as an artifact, which asks the server first (measured on
        wandb 0.31: ~20 s before it gives up on a server gone away): bounded by logger.finish_timeout."""
        (self.run_dir / f"{key.replace('/', '_')}.jsonl").write_text(
            "".join(json.dumps(dict(zip(columns, row)), ensure_ascii=False) + "\n" for row in rows))
        if self.wandb_run is not None:
            import wandb

            self._wandb_bounded("log", {key: wandb.Table(columns=columns, data=rows)}, step=step)

    def log_image(self, key: str, path: Path, step: int | None = None) -> None:
        if self.wandb_run is not None:
            import wandb

            self._wandb_bounded("log", {key: wandb.Image(str(path))}, step=step)

    def set_summary(self, values: dict) -> None:
        self.summary.update(values)
        if self.wandb_run is not None:
            try:
                self.wandb_run.summary.update(values)
            except Exception as error:
                self._disable(describe(error))

    def finish(self, status: str, extra: dict | None = None) -> None:
        """The local records first (summary.json is the last of them), then W&B's finish, bounded."""
        record = {"status": status, "wandb_id": self.run_id, "wandb_url": self.wandb_url, **(extra or {}),
                  "summary": _json_safe(self.summary)}
        (self.run_dir / "summary.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
        if self.wandb_run is not None:
            run, self.wandb_run = self.wandb_run, None
            problem = finish_within(run, 0 if status == "finished" else 1, self.finish_timeout)
            if problem and not self.wandb_failed:
                self.wandb_failed = True
                log.warning("%s", finish_failure_line(problem, self.finish_timeout, self.run_dir))

    def _wandb(self, method: str, *args, **kwargs) -> None:
        if self.wandb_run is None:
            return
        try:
            getattr(self.wandb_run, method)(*args, **kwargs)
        except Exception as error:
            self._disable(describe(error))

    def _wandb_bounded(self, method: str, *args, **kwargs) -> None:
        """A W&B call that may wait on the server, in a daemon thread joined for logger.finish_timeout."""
        if self.wandb_run is not None:
            problem = call_within(getattr(self.wandb_run, method), self.finish_timeout, *args, **kwargs)
            if problem:
                self._disable(problem)

    def _disable(self, problem: str) -> None:
        """W&B is off for the rest of the run and its service torn down, so that no exit handler of wandb
        waits for a server either; the local records go on."""
        self.wandb_run = None
        stop_wandb_service()
        if not self.wandb_failed:
            self.wandb_failed = True
            log.warning("%s", disabled_line(problem, self.finish_timeout, self.run_dir))


def import_quiet_wandb():
    """wandb, set up so that only gpt_exp speaks about it: one line when something fails."""
    # wandb's telemetry to the server flushes in an exit handler that waits for a server that does not
    # answer (measured: ~20 s more at exit on wandb 0.31); a user's own setting wins
    os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    import wandb

    wandb.setup(settings=wandb.Settings(silent=True))  # also silences wandb's messages outside a run
    return wandb


def online_url(run) -> str | None:
    try:
        return run.url if not run.offline else None
    except Exception:  # an attribute missing on another wandb version: no URL, nothing else lost
        return None


def start_failure_line(error: Exception, mode: str, init_timeout: float, metrics_path: Path) -> str:
    reason = f"{type(error).__name__}: {first_line(error)}"
    if mode == "online":
        url = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
        return (f"W&B unreachable at {url} ({reason}); metrics.jsonl goes on. Fix: logger.mode=offline "
                f"(`wandb sync` uploads later), or raise logger.init_timeout (now {init_timeout:g} s)")
    return (f"W&B is off for this run ({reason}); metrics still go to {metrics_path}. "
            f"Fix: logger.mode=disabled, or repair the wandb install")


def disabled_line(problem: str, finish_timeout: float, run_dir: Path) -> str:
    url = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    return (f"W&B failed ({problem}; server {url}); it is off for the rest of this run, metrics.jsonl goes on. "
            f"Fix: logger.mode=offline (`wandb sync {run_dir / 'wandb'}/run-*` uploads what W&B holds), "
            f"or raise logger.finish_timeout (now {finish_timeout:g} s)")


def finish_failure_line(problem: str, finish_timeout: float, run_dir: Path) -> str:
    url = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
    return (f"W&B did not finish ({problem}; server {url}); the local records in {run_dir} are complete, "
            f"the W&B run may lack its last rows. Fix: `wandb sync {run_dir / 'wandb'}/run-*` later, "
            f"raise logger.finish_timeout (now {finish_timeout:g} s), or logger.mode=offline")


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {first_line(error)}"


def first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else "no message"


def call_within(function, timeout: float, *args, **kwargs) -> str | None:
    """`function(*args, **kwargs)` in a daemon thread joined for `timeout` seconds; what went wrong, or None.
    A call that is still waiting is left to its thread (a daemon: it never keeps the process alive)."""
    errors: list[BaseException] = []

    def call() -> None:
        try:
            function(*args, **kwargs)
        except BaseException as error:  # also HandleAbandonedError once wandb's service is torn down
            errors.append(error)

    thread = threading.Thread(target=call, name="gpt_exp-wandb-call", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"no answer within logger.finish_timeout={timeout:g} s"
    return describe(errors[0]) if errors else None


def finish_within(run, exit_code: int, timeout: float) -> str | None:
    """`run.finish`, bounded: with its server gone, wandb's finish retries for ever. After a timeout or an
    error wandb's service is torn down, so the process can exit. Returns what went wrong, or None."""
    problem = call_within(run.finish, timeout, exit_code=exit_code)
    if problem:
        stop_wandb_service()
    return problem


def stop_wandb_service(timeout: float = 5.0) -> None:
    """`wandb.teardown()` (which unregisters wandb's exit handler), bounded; if wandb's service process
    (wandb-core) still runs after `timeout` seconds, it is killed, which ends the teardown."""
    import wandb
    from wandb.sdk import wandb_setup

    # measured on wandb 0.31: the singleton's connection holds the wandb-core Popen
    connection = getattr(getattr(wandb_setup, "_singleton", None), "_connection", None)
    process = getattr(getattr(connection, "_proc", None), "_process", None)

    def teardown() -> None:
        try:
            wandb.teardown()
        except BaseException:  # SystemExit with wandb-core's exit code, a connection already closed
            pass

    thread = threading.Thread(target=teardown, name="gpt_exp-wandb-teardown", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive() and process is not None and process.poll() is None:
        process.kill()
        thread.join(timeout)


def finish_active_run(exit_code: int, timeout: float) -> None:
    """Ends a W&B run left open by a job that raised (bounded, like RunTracker.finish)."""
    wandb = sys.modules.get("wandb")  # never imported: no run to end
    run = getattr(wandb, "run", None) if wandb else None
    if run is not None:
        problem = finish_within(run, exit_code, timeout)
        if problem:
            log.warning("W&B did not finish the failed run (%s); its local records are complete", problem)


def _json_safe(values: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
