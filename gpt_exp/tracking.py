"""Every metric goes to a local `metrics.jsonl` and, unless disabled, to a W&B run.

The local file is the record that `gpt_exp.compare` reads, so comparing runs needs no W&B
server; W&B is a mirror for dashboards. A failing W&B never stops training: it is switched off
with a warning and the local record goes on.
"""
from __future__ import annotations

import json
import logging
import math
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
        self.run_id = wandb_resume.run_id if wandb_resume else resume_id
        self.continues = bool(wandb_resume and wandb_resume.continues)
        self.wandb_last_step = wandb_resume.last_step if wandb_resume else None  # W&B holds these steps already
        logger = cfg.logger
        if logger.mode != "disabled":
            self.wandb_run = self._start_wandb(cfg, name, group, self.run_id)
            if self.wandb_run is not None:
                self.run_id = self.wandb_run.id
                if self.continues and self.wandb_run.resumed and self.wandb_run.starting_step > 0:
                    self.wandb_last_step = self.wandb_run.starting_step - 1  # online: the server's last step

    def _start_wandb(self, cfg: DictConfig, name: str, group: str | None, resume_id: str | None):
        logger = cfg.logger
        try:
            import wandb

            return wandb.init(
                project=logger.project, entity=logger.get("entity"), mode=logger.mode,
                dir=str(self.run_dir), name=name, group=logger.get("group") or group,
                job_type=cfg.task.name, tags=list(logger.get("tags") or []), notes=logger.get("notes"),
                config=OmegaConf.to_container(cfg, resolve=True), id=resume_id,
                resume="allow" if self.continues else None, reinit="finish_previous",
                settings=wandb.Settings(init_timeout=90, silent=True))
        except Exception as error:  # no account, no network, a broken install: train on, record locally
            log.warning("W&B is off for this run (%s: %s); metrics still go to %s",
                        type(error).__name__, error, self.metrics_path)
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
        (self.run_dir / f"{key.replace('/', '_')}.jsonl").write_text(
            "".join(json.dumps(dict(zip(columns, row)), ensure_ascii=False) + "\n" for row in rows))
        if self.wandb_run is not None:
            import wandb

            self._wandb("log", {key: wandb.Table(columns=columns, data=rows)}, step=step)

    def log_image(self, key: str, path: Path, step: int | None = None) -> None:
        if self.wandb_run is not None:
            import wandb

            self._wandb("log", {key: wandb.Image(str(path))}, step=step)

    def set_summary(self, values: dict) -> None:
        self.summary.update(values)
        if self.wandb_run is not None:
            try:
                self.wandb_run.summary.update(values)
            except Exception as error:
                self._disable(error)

    def finish(self, status: str, extra: dict | None = None) -> None:
        record = {"status": status, "wandb_id": self.run_id, **(extra or {}), "summary": _json_safe(self.summary)}
        (self.run_dir / "summary.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
        if self.wandb_run is not None:
            try:
                self.wandb_run.finish(exit_code=0 if status == "finished" else 1)
            except Exception as error:
                self._disable(error)

    def _wandb(self, method: str, *args, **kwargs) -> None:
        if self.wandb_run is None:
            return
        try:
            getattr(self.wandb_run, method)(*args, **kwargs)
        except Exception as error:
            self._disable(error)

    def _disable(self, error: Exception) -> None:
        log.warning("W&B failed (%s: %s); it is off for the rest of this run, metrics.jsonl goes on",
                    type(error).__name__, error)
        self.wandb_run = None


def _json_safe(values: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
