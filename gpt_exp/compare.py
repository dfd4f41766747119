"""Compare runs from their local records, no W&B server needed.

    python -m gpt_exp compare multirun/2026-01-01/12-00-00 [more run or sweep dirs...] [--out DIR]

Every run directory under the given paths (one with summary.json, metrics.jsonl or a Hydra
`.hydra/overrides.yaml`) becomes a row of a table written as Markdown and CSV: the values that
differ between the runs' overrides (the swept keys), status, best and final metrics, test metrics
and training throughput. The plots: the loss curves of all runs overlaid, the best value of the
main metric against each swept key (one line per combination of the other swept keys), and the
metric in job order with the running best (the progress of a search).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gpt_exp.plots import plot_curves
from gpt_exp.tracking import read_metrics

# overrides that say where and how a run is recorded, not what it trains
UNCOMPARED = ("run_name", "logger.", "hydra.", "paths.", "trainer.resume")
CURVES = ["train/loss", "eval/loss"]


@dataclass
class Run:
    path: Path
    name: str
    status: str
    overrides: dict[str, str]
    summary: dict
    main_metric: str | None        # e.g. "loss": summary has best/<main_metric>
    greater_is_better: bool | None
    rows: list[dict]
    error: str | None = None
    values: dict[str, str] = field(default_factory=dict)  # swept key -> value, filled by compare()

    @property
    def best(self) -> float | None:
        value = self.summary.get(f"best/{self.main_metric}") if self.main_metric else None
        return value if isinstance(value, (int, float)) and math.isfinite(value) else None

    def last(self, key: str):
        values = [r[key] for r in self.rows if r.get(key) is not None]
        return values[-1] if values else None

    @property
    def tokens_per_sec(self) -> float | None:
        values = [r["train/tokens_per_sec"] for r in self.rows if r.get("train/tokens_per_sec")]
        if len(values) > 1:
            values = values[1:]  # the first window holds the graph compilation
        return statistics.median(values) if values else None

    @property
    def job_num(self) -> int | None:
        match = re.match(r"(\d+)_", self.path.name)
        return int(match.group(1)) if match else None


def is_run_dir(path: Path) -> bool:
    return (path / "summary.json").is_file() or (path / "metrics.jsonl").is_file() or \
        (path / ".hydra" / "overrides.yaml").is_file()


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories at or under the paths, each once, in path order (Hydra job order within a sweep)."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        if is_run_dir(path):
            candidates = [path]
        else:
            candidates = sorted({p.parent.parent if p.parent.name == ".hydra" else p.parent
                                 for pattern in ("summary.json", "metrics.jsonl", ".hydra/overrides.yaml")
                                 for p in path.rglob(pattern)}, key=_natural)
        for candidate in candidates:
            if is_run_dir(candidate) and candidate.resolve() not in {f.resolve() for f in found} and \
                    not any(part in ("wandb", "comparison") for part in candidate.relative_to(path).parts):
                found.append(candidate)
    return found


def _natural(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def parse_overrides(path: Path) -> dict[str, str]:
    import yaml

    file = path / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(file.read_text()) if file.is_file() else []
    out = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or key.startswith("~"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.lstrip("+")] = value
    return out


def load_run(path: Path) -> Run:
    record = json.loads((path / "summary.json").read_text()) if (path / "summary.json").is_file() else {}
    main = record.get("main_metric")
    return Run(path=path, name=record.get("run_name") or path.name,
               status=record.get("status") or "incomplete",  # no summary: still running, or killed
               overrides=parse_overrides(path), summary=record.get("summary") or {},
               main_metric=main.split("/", 1)[-1] if main else None,
               greater_is_better=record.get("greater_is_better"), rows=read_metrics(path),
               error=record.get("error"))


def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value is not the same in every run, in first-seen order."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.overrides if k not in keys and not k.startswith(UNCOMPARED)]
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


def compare(paths: list[Path], out: Path) -> dict:
    """Writes comparison.md, comparison.csv and the plots into `out`; returns what it wrote."""
    runs = [load_run(p) for p in find_runs(paths)]
    if not runs:
        raise FileNotFoundError(f"no run directories under {', '.join(map(str, paths))} "
                                f"(a run directory holds summary.json, metrics.jsonl or .hydra/overrides.yaml)")
    keys = swept_keys(runs)
    for run in runs:
        run.values = {k: run.overrides.get(k, "") for k in keys}
    runs = _ranked(runs)
    out.mkdir(parents=True, exist_ok=True)
    header, table = _table(runs, keys)
    written = {"markdown": out / "comparison.md", "csv": out / "comparison.csv", "plots": []}
    written["markdown"].write_text(_markdown(header, table, runs, keys, paths))
    with written["csv"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header + ["run_name", "overrides", "error", "run_dir"])
        for run, row in zip(runs, table):
            writer.writerow(row + [run.name, " ".join(f"{k}={v}" for k, v in run.overrides.items()), run.error or "",
                                   str(run.path)])
    written["plots"] = _plots(runs, keys, out)
    written["runs"] = runs
    written["swept"] = keys
    return written


def _ranked(runs: list[Run]) -> list[Run]:
    """Best first when the runs share a main metric; failed and unfinished runs last."""
    metrics = {(r.main_metric, r.greater_is_better) for r in runs if r.best is not None}
    if len(metrics) != 1:
        return sorted(runs, key=lambda r: r.best is None)
    greater = next(iter(metrics))[1]
    return sorted(runs, key=lambda r: (r.best is None, -(r.best or 0) if greater else (r.best or 0)))


def _table(runs: list[Run], keys: list[str]) -> tuple[list[str], list[list]]:
    best_keys = _keys(runs, lambda r: [k for k in r.summary if k.startswith("best/") and k != "best/step"])
    eval_keys = _keys(runs, lambda r: [f"eval/{r.main_metric}"] if r.main_metric else [])
    test_keys = _keys(runs, lambda r: [k for k in r.summary if k.startswith("test/")])
    header = ["run", "status", *keys, *best_keys, "best step", *[f"final {k}" for k in eval_keys],
              "final train/loss", *test_keys, "tokens/s", "steps"]
    table = []
    for run in runs:
        steps = [r["step"] for r in run.rows if "step" in r]
        table.append([run.path.name, run.status, *[run.values[k] for k in keys],
                      *[run.summary.get(k) for k in best_keys], run.summary.get("best/step"),
                      *[run.last(k) for k in eval_keys], run.last("train/loss"),
                      *[run.summary.get(k) for k in test_keys], run.tokens_per_sec, max(steps) if steps else None])
    return header, table


def _keys(runs: list[Run], pick) -> list[str]:
    keys: list[str] = []
    for run in runs:
        keys += [k for k in pick(run) if k not in keys]
    return keys


def _cell(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _markdown(header: list[str], table: list[list], runs: list[Run], keys: list[str], paths: list[Path]) -> str:
    mains = {(r.main_metric, r.greater_is_better) for r in runs if r.main_metric}
    lines = [f"# Comparison of {len(runs)} runs", "",
             f"From: {', '.join(str(p) for p in paths)}  ",
             f"Swept: {', '.join(keys) if keys else '(nothing differs between the runs overrides)'}  "]
    for metric, greater in sorted(mains, key=str):
        lines.append(f"Main metric: best/{metric} ({'higher' if greater else 'lower'} is better)  ")
    failed = [r for r in runs if r.status != "finished"]
    if failed:
        lines.append(f"Not finished: {len(failed)} (status failed: see error.txt in the run directory)  ")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table]
    for run in failed:
        if run.error:
            lines.append(f"\n- {run.path.name}: {run.error}")
    return "\n".join(lines) + "\n"


def _label(run: Run) -> str:
    return ",".join(f"{k}={_short(v)}" for k, v in run.values.items()) or run.path.name


def _short(value: str) -> str:
    number = _number(value)
    return f"{number:.3g}" if number is not None and "." in value else value


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _plots(runs: list[Run], keys: list[str], out: Path) -> list[Path]:
    plots = []
    curves = plot_curves({_label(r): r.rows for r in runs if r.rows}, CURVES, out / "loss_curves.png",
                         "loss curves")
    if curves:
        plots.append(curves)
    by_metric: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.best is not None:
            by_metric.setdefault((run.main_metric, run.greater_is_better), []).append(run)
    for (metric, greater), group in by_metric.items():
        for key in keys:
            if len({r.values[key] for r in group}) > 1:
                plots.append(_metric_vs_key(group, key, metric, keys, out))
        if len(group) > 2 and all(r.job_num is not None for r in group):
            plots.append(_progress(group, metric, greater, out))
    return plots


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


def _metric_vs_key(runs: list[Run], key: str, metric: str, keys: list[str], out: Path) -> Path:
    """best/<metric> against one swept key; one line per combination of the other swept keys."""
    plt = _figure()
    others = [k for k in keys if k != key]
    numbers = [_number(r.values[key]) for r in runs]
    numeric = all(n is not None for n in numbers)
    categories = sorted({r.values[key] for r in runs}, key=lambda v: [int(t) if t.isdigit() else t
                                                                   for t in re.split(r"(\d+)", v)])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(",".join(f"{k}={_short(run.values[k])}" for k in others), []).append(run)
    for label, members in sorted(groups.items()):
        points = sorted((_number(r.values[key]) if numeric else categories.index(r.values[key]), r.best)
                        for r in members)
        ax.plot(*zip(*points), marker="o", linestyle="-" if len(points) > 1 else "none", label=label or None)
    if numeric:
        positive = [n for n in numbers if n > 0]
        if len(positive) == len(numbers) and max(positive) / min(positive) >= 20:
            ax.set_xscale("log")
    else:
        ax.set_xticks(range(len(categories)), categories, rotation=20 if len(categories) > 4 else 0)
    ax.set_xlabel(key)
    ax.set_ylabel(f"best/{metric}")
    ax.grid(alpha=0.3)
    if len(groups) > 1:
        ax.legend(fontsize=7)
    ax.set_title(f"best/{metric} against {key} ({len(runs)} runs)")
    fig.tight_layout()
    path = out / f"{_safe(metric)}_vs_{_safe(key)}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _progress(runs: list[Run], metric: str, greater: bool, out: Path) -> Path:
    """The metric in job order and the best so far: how a search converges."""
    plt = _figure()
    ordered = sorted(runs, key=lambda r: r.job_num)
    jobs = [r.job_num for r in ordered]
    values = [r.best for r in ordered]
    pick = max if greater else min
    running = [pick(values[:i + 1]) for i in range(len(values))]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(jobs, values, "o", label="job")
    ax.step(jobs, running, where="post", label="best so far")
    ax.set_xlabel("job number")
    ax.set_ylabel(f"best/{metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"best/{metric} by job ({'higher' if greater else 'lower'} is better)")
    fig.tight_layout()
    path = out / f"{_safe(metric)}_by_job.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpt_exp compare",
        description="Compare runs from their local records: a Markdown and CSV table and PNG plots.")
    parser.add_argument("paths", nargs="+", type=Path, help="run directories or sweep (multirun) directories")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: <sweep dir>/comparison for one sweep dir, else ./comparison)")
    args = parser.parse_args(argv)
    out = args.out
    if out is None:
        single = len(args.paths) == 1 and args.paths[0].is_dir() and not is_run_dir(args.paths[0])
        out = args.paths[0] / "comparison" if single else Path("comparison")
    try:
        written = compare(args.paths, out)
    except FileNotFoundError as error:
        print(f"compare: {error}", file=sys.stderr)
        return 2
    print(written["markdown"].read_text())
    print(f"table: {written['markdown']}  {written['csv']}")
    for plot in written["plots"]:
        print(f"plot:  {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
