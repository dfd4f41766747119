"""Command line: `python -m gpt_exp [overrides]` (Hydra), `python -m gpt_exp compare RUN_DIRS...` and
`python -m gpt_exp sample RUN_DIR [key=value ...]`."""
from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ log floods the terminal with deprecation notices

import hydra  # noqa: E402
from hydra.errors import HydraException  # noqa: E402
from omegaconf import DictConfig, OmegaConf, open_dict  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402

from gpt_exp import CONFIG_DIR  # noqa: E402
from gpt_exp.config_check import check_settings, composition_error_line  # noqa: E402
from gpt_exp.data.cache import DataUnavailableError  # noqa: E402
from gpt_exp.errors import ConfigError  # noqa: E402
from gpt_exp.multirun import job_label, job_name, sweep_group, sweep_varying_keys  # noqa: E402
from gpt_exp.tracking import finish_active_run  # noqa: E402

log = logging.getLogger("gpt_exp")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def hydra_entry(cfg: DictConfig) -> float | None:
    """The task function of every run and every multirun job; returns the metric a sweeper optimises."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    varying = sweep_varying_keys(hydra_cfg.sweep.dir, hydra_cfg.sweeper.get("params")) if multirun else []
    # as written: an override such as run_name=${model.nam} must reach the config check unresolved
    job_overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False) if multirun else []
    try:
        check_settings(cfg)  # every key typed and in range, before a name, a download, a model or a W&B run
    except ConfigError as error:
        if not multirun:
            print(f"\nconfig error: {error}\n", file=sys.stderr)
            sys.exit(2)
        label = job_label(job_overrides, varying) or hydra_cfg.job.override_dirname or "job"
        return record_failure(Path(hydra_cfg.runtime.output_dir), label, error)
    run_dir = Path(cfg.paths.output_dir or hydra_cfg.runtime.output_dir)
    run_name, group = cfg.run_name, None
    if multirun:  # named by what varies across the sweep; config.yaml and W&B get the same name
        run_name, group = job_name(cfg.run_name, job_overrides, varying), sweep_group(hydra_cfg.sweep.dir)
        with open_dict(cfg):
            cfg.run_name = run_name
    finish_timeout = cfg.logger.finish_timeout
    try:
        if cfg.trainer.resume:  # the run's own config.yaml, with the few changes a resume may make
            cfg = resumed_config(cfg)
            run_name = cfg.run_name
        from gpt_exp.run import train

        result = train(cfg, run_dir, run_name, group)
    except (ConfigError, DataUnavailableError) as error:
        if not multirun:
            kind = "config error" if isinstance(error, ConfigError) else "data unavailable"
            print(f"\n{kind}: {error}\n", file=sys.stderr)
            finish_active_run(exit_code=1, timeout=finish_timeout)
            sys.exit(2)
        return record_failure(run_dir, run_name, error, finish_timeout)
    except Exception as error:
        mark_raised_by_task(error)
        if not multirun:
            finish_active_run(exit_code=1, timeout=finish_timeout)  # a dead W&B server must not hold the exit
            raise
        return record_failure(run_dir, run_name, error, finish_timeout)
    return result.get(f"best/{result_metric(cfg)}")


def resumed_config(cfg: DictConfig) -> DictConfig:
    """`trainer.resume=<dir>` alone continues the run with its saved config; what the command line changed
    is found by composing the defaults (no overrides) beside it."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from gpt_exp import resume

    overrides = OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))
    with resume.failures_recorded(Path(cfg.trainer.resume)):
        return resume.resumed_config(cfg, compose(config_name="train"), [o.key_or_group for o in overrides])


def result_metric(cfg: DictConfig) -> str:
    from hydra.utils import get_class

    return get_class(cfg.task._target_).main_metric


def record_failure(run_dir: Path, run_name: str, error: Exception, finish_timeout: float = 30.0) -> float:
    """In a multirun a crashed job is recorded as failed and the sweep goes on."""
    import json

    log.error("job %s failed: %s: %s", run_name, type(error).__name__, error)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "error.txt").write_text("".join(traceback.format_exception(error)))
    (run_dir / "summary.json").write_text(json.dumps(
        {"status": "failed", "run_name": run_name, "error": f"{type(error).__name__}: {error}"}, indent=2))
    finish_active_run(exit_code=1, timeout=finish_timeout)  # the next job's W&B run starts afresh
    return float("nan")


def mark_raised_by_task(error: Exception) -> None:
    """An error of the run itself (not of composing its config) keeps Hydra's traceback report."""
    try:
        error.gpt_exp_raised_by_task = True
    except AttributeError:  # an exception type with __slots__
        pass


def report_composition_errors(original_run_and_report, arguments: list[str] | None = None):
    """Hydra's run_and_report, except that a composition error (unknown group option, bad override syntax, an
    override of a key that does not exist) is one line `config error: ...` and exit code 2, like every user
    error of gpt_exp. HYDRA_FULL_ERROR=1 keeps Hydra's own report with the traceback."""
    def run_and_report(func):
        try:
            return func()
        except (HydraException, OmegaConfBaseException, ValueError, OSError) as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or getattr(error, "gpt_exp_raised_by_task", False):
                return original_run_and_report(lambda raised=error: _reraise(raised))
            print(f"\nconfig error: {composition_error_line(error, sys.argv[1:] if arguments is None else arguments)}\n", file=sys.stderr)
            sys.exit(2)

    return run_and_report


def _reraise(error: Exception):
    raise error


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "compare":
        from gpt_exp.tools.compare import main as compare_main

        sys.exit(compare_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "sample":
        from gpt_exp.sample import main as sample_main

        try:
            sys.exit(sample_main(sys.argv[2:]))
        except ConfigError as error:
            print(f"config error: {error}", file=sys.stderr)
            sys.exit(2)
    import hydra._internal.utils as hydra_utils  # measured on hydra-core 1.3.8: _run_hydra calls it by this name

    hydra_utils.run_and_report = report_composition_errors(hydra_utils.run_and_report)
    hydra_entry()
    exit_if_jobs_failed()


def exit_if_jobs_failed() -> None:
    """Hydra's multirun returns normally whatever its jobs did: exit code 1 when any failed, after all ran."""
    from gpt_exp import multirun

    if multirun.failed_jobs:
        print(f"\n{multirun.failure_line(multirun.failed_jobs, len(multirun.jobs_run))}\n", file=sys.stderr)
        sys.exit(1)
