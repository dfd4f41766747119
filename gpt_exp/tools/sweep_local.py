"""Run a W&B sweep definition on this machine, without a W&B server.

    python -m gpt_exp.tools.sweep_local conf/sweep/wandb/lm_shakespeare.yaml [--count N] [--dry-run] [-- OVERRIDES...]

The runs are proposed by W&B's own sweep engine (the `sweeps` package that the W&B server runs):
grid, random and bayes behave as under `wandb agent`, and the YAML is validated against W&B's
schema first. Each proposed run is the YAML's `command` with the proposed values as Hydra
overrides, started as its own process in `<sweep dir>/<i>_<run name>/`, so a crash (recorded as
failed, with its output) never stops the sweep. Afterwards `gpt_exp.tools.compare` writes the table and
plots into `<sweep dir>/comparison/`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path

import yaml

from gpt_exp import CONFIG_DIR
from gpt_exp.errors import ConfigError
from gpt_exp.multirun import failure_line, sweep_group

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]  # W&B's default
ENVVAR = re.compile(r"\$\{envvar:([A-Za-z0-9_]*)\}")


def load_sweep(path: Path) -> dict:
    """The sweep definition, checked against W&B's schema; local limits raise ConfigError."""
    if not path.is_file():
        raise ConfigError(f"no sweep definition at {path}")
    try:
        sweep = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML (quote values holding ${{...}}): {error}") from error
    if not isinstance(sweep, dict) or "parameters" not in sweep or "method" not in sweep:
        raise ConfigError(f"{path} is not a W&B sweep definition (it needs `method` and `parameters`); "
                          f"Hydra presets such as conf/sweep/grid.yaml run with `python -m gpt_exp -m +sweep=grid`")
    violations = sweeps_engine().schema_violations_from_proposed_config(sweep)
    if violations:
        raise ConfigError(f"{path} is not a valid W&B sweep:\n  " + "\n  ".join(violations))
    for name, spec in sweep["parameters"].items():
        if isinstance(spec, dict) and "parameters" in spec:
            raise ConfigError(f"{path}: parameters.{name} is nested; write dotted Hydra keys instead "
                              f"(e.g. `optimizer.lr:` rather than `optimizer: {{parameters: {{lr: ...}}}}`)")
    command = sweep.get("command") or DEFAULT_COMMAND
    if "${args}" in command or "${args_no_boolean_flags}" in command:
        raise ConfigError(f"{path}: command uses ${{args}} (--key=value), which Hydra rejects; "
                          f"use ${{args_no_hyphens}} (key=value)")
    if "${args_no_hyphens}" not in command:
        raise ConfigError(f"{path}: command never passes the proposed values; add ${{args_no_hyphens}}")
    return sweep


def sweeps_engine():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydantic v1-style config in the package
            import sweeps
    except ImportError as error:
        raise ConfigError("the local sweep driver needs W&B's sweep engine: pip install sweeps") from error
    return sweeps


def build_command(sweep: dict, values: dict, extra: list[str], wandb_mode: str) -> tuple[list[str], list[str]]:
    """(program, overrides): the YAML's command with W&B's macros filled in as the W&B agent would
    (the interpreter: this Python), split into what starts gpt_exp and its Hydra overrides."""
    args = [f"{key}={value}" for key, value in values.items()]  # W&B's own formatting: f"{param}={value}"
    macros = {"${env}": [], "${interpreter}": [sys.executable], "${program}": [str(sweep.get("program", ""))]}
    program, overrides = [], []
    for chunk in sweep.get("command") or DEFAULT_COMMAND:
        chunk = ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), str(chunk))
        if chunk == "${args_no_hyphens}":
            overrides += args
        elif chunk in macros:
            program += macros[chunk]
        elif "=" in chunk and not chunk.startswith("-"):
            if not chunk.startswith("logger.mode="):  # the driver decides where the runs go
                overrides.append(chunk)
        else:
            program.append(chunk)
    return program, overrides + [f"logger.mode={wandb_mode}"] + list(extra)


def run_label(values: dict, fixed: set[str] = frozenset()) -> str:
    """The values that vary across the sweep (seed included), as a multirun names its jobs."""
    def short(value):
        return f"{value:.4g}" if isinstance(value, float) else value

    return ",".join(f"{k}={short(v)}" for k, v in sorted(values.items()) if k not in fixed)


def fixed_keys(parameters: dict) -> set[str]:
    """Parameters with one value (`value: x` or a one-item `values`): the same in every run."""
    return {k for k, spec in parameters.items()
            if isinstance(spec, dict) and ("value" in spec or len(spec.get("values") or [None, None]) == 1)}


def compose_job(overrides: list[str]):
    """Composes a job's config before it starts, so a misspelt key fails the sweep at once."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        try:
            return compose(config_name="train", overrides=overrides)
        except Exception as error:
            raise ConfigError(f"the overrides {' '.join(overrides)} do not compose: {error}") from error


def hydra_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def record_dead_job(job_dir: Path, name: str, returncode: int, output: str) -> None:
    """A job that died without its own record (killed, crashed at import) still shows up as failed."""
    summary_path = job_dir / "summary.json"
    if summary_path.exists() and json.loads(summary_path.read_text()).get("status") in ("finished", "failed"):
        return
    tail = "\n".join(output.splitlines()[-60:])
    (job_dir / "error.txt").write_text(tail)
    lines = [line for line in output.splitlines() if line.strip()]
    summary_path.write_text(json.dumps({"status": "failed", "run_name": name, "exit_code": returncode,
                                        "error": lines[-1] if lines else f"exit code {returncode}"}, indent=2))


def run_job(command: list[str], job_dir: Path, run_name: str, proposal, metric: str | None) -> dict:
    """One proposed run as its own process; its record read back into the proposal (the bayes search's
    history) and into the sweep's result row."""
    job_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with (job_dir / "output.log").open("w") as log_file:
        process = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT, text=True)
    output = (job_dir / "output.log").read_text(errors="replace")
    if process.returncode != 0:
        record_dead_job(job_dir, run_name, process.returncode, output)
    record = json.loads((job_dir / "summary.json").read_text()) if (job_dir / "summary.json").exists() else {}
    status = record.get("status", "failed")
    summary = record.get("summary") or {}
    proposal.state = "finished" if status == "finished" else "failed"
    proposal.summary_metrics = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
    value = summary.get(metric) if metric else None
    shown = f"{metric} {value:.4f}" if isinstance(value, (int, float)) else record.get("error", "")
    print(f"    {status} in {time.time() - started:.0f} s: {shown}", flush=True)
    return {"run_dir": str(job_dir), "status": status, "metric": value,
            "name": record.get("run_name") or run_name, "error": record.get("error", "")}


def run_sweep(sweep_path: Path, sweep_dir: Path | None = None, count: int | None = None, extra: list[str] = (),
              wandb_mode: str = "offline", seed: int = 0, dry_run: bool = False) -> list[dict]:
    import numpy as np

    sweeps = sweeps_engine()
    sweep = load_sweep(sweep_path)
    method = sweep["method"]
    count = count or sweep.get("run_cap")
    if method != "grid" and not count:
        raise ConfigError(f"method={method} proposes runs without end: give --count N or `run_cap` in {sweep_path}")
    swept = set(sweep["parameters"])
    fixed = fixed_keys(sweep["parameters"])
    clash = sorted(swept & {o.lstrip("+~").split("=", 1)[0] for o in extra})
    if clash:
        raise ConfigError(f"{', '.join(clash)} is swept by {sweep_path}; remove it from the extra overrides")
    name = sweep.get("name") or sweep_path.stem
    sweep_dir = sweep_dir or Path("multirun") / datetime.now().strftime("%Y-%m-%d") / \
        f"{datetime.now():%H-%M-%S}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}"
    group = sweep_group(sweep_dir)  # multirun/DATE/TIME_NAME: DATE_TIME_NAME, unique
    metric = (sweep.get("metric") or {}).get("name")
    np.random.seed(seed)  # random and bayes draw from numpy's global generator
    if not dry_run:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / "sweep.yaml").write_text(sweep_path.read_text())
    print(f"sweep {name!r}: method={method}, {count or 'all'} runs, metric {metric or '-'}; directory {sweep_dir}",
          flush=True)

    history, results = [], []
    while count is None or len(history) < count:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proposal = sweeps.next_run(sweep, history, validate=False)
        if proposal is None:  # a grid is exhausted
            break
        values = {key: spec["value"] for key, spec in proposal.config.items()}
        index, label = len(history), run_label(values, fixed)
        program, overrides = build_command(sweep, values, extra, wandb_mode)
        cfg = compose_job(overrides)
        run_name = f"{cfg.run_name}[{label}]"
        job_dir = sweep_dir / f"{index}_{re.sub(r'[^A-Za-z0-9_.=,-]+', '_', str(cfg.run_name))}"
        command = program + overrides + [f"hydra.run.dir={job_dir}", f"run_name={hydra_quote(run_name)}",
                                         f"logger.group={hydra_quote(group)}"]
        if dry_run:
            print(f"[{index + 1}] " + " ".join(command), flush=True)
            proposal.state = "finished"
            history.append(proposal)
            continue
        print(f"[{index + 1}{'/' + str(count) if count else ''}] {label}  (log: {job_dir / 'output.log'})", flush=True)
        result = run_job(command, job_dir, run_name, proposal, metric)
        result["values"] = values
        history.append(proposal)
        results.append(result)

    if not dry_run and results:
        _report(results, sweep, sweep_dir, fixed)
    return results


def _report(results: list[dict], sweep: dict, sweep_dir: Path, fixed: set[str]) -> None:
    from gpt_exp.tools.compare import main as compare

    metric = sweep.get("metric") or {}
    scored = [r for r in results if isinstance(r["metric"], (int, float))]
    if scored:
        pick = max if metric.get("goal") == "maximize" else min
        best = pick(scored, key=lambda r: r["metric"])
        print(f"best: {metric.get('name')} {best['metric']:.4f} with {run_label(best['values'], fixed)} ({best['run_dir']})")
    compare([str(sweep_dir)])
    failed = [{"name": r["name"], "error": r["error"], "status": r["status"], "job_dir": r["run_dir"]}
              for r in results if r["status"] != "finished"]
    if failed:  # last, so that it is the line a user sees
        print(failure_line(failed, len(results), what="sweep"), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpt_exp.tools.sweep_local",
        description="Run a W&B sweep definition locally (no W&B server): W&B's engine proposes the runs, "
                    "each runs as `python -m gpt_exp <overrides>`.")
    parser.add_argument("sweep", type=Path, help="the W&B sweep YAML, e.g. conf/sweep/wandb/lm_shakespeare.yaml")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides added to every run (after --), "
                        "e.g. -- device=cpu trainer.max_steps=100")
    parser.add_argument("--count", type=int, default=None, help="number of runs (default: run_cap; a grid: all)")
    parser.add_argument("--sweep-dir", type=Path, default=None,
                        help="where the runs go (default multirun/DATE/TIME_NAME)")
    parser.add_argument("--wandb-mode", default="offline", choices=["offline", "disabled", "online"],
                        help="W&B mode of the runs (default offline: `wandb sync` uploads later)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random / bayes proposals")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_intermixed_args(argv[:argv.index("--")] if "--" in argv else argv)
    args.overrides = list(args.overrides) + extra
    try:
        results = run_sweep(args.sweep, args.sweep_dir, args.count, args.overrides, args.wandb_mode, args.seed,
                            args.dry_run)
    except ConfigError as error:
        print(f"\nsweep error: {error}\n", file=sys.stderr)
        return 2
    return 0 if args.dry_run or all(r["status"] == "finished" for r in results) else 1  # after all runs ran


if __name__ == "__main__":
    os.environ.setdefault("GLOG_v", "3")
    sys.exit(main())
