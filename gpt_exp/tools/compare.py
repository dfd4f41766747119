"""Compare runs from their local records, no W&B server needed.

    python -m gpt_exp compare multirun/2026-01-01/12-00-00 [more run or sweep dirs...] [--out DIR] [--per-seed]

Every run directory under the given paths (one with summary.json or metrics.jsonl) becomes a row of
the CSV table; the Markdown table groups the runs by setting (the swept keys but the seed) with the
mean ± std over seeds, or shows one row per run with `--per-seed`. Columns: only the keys that vary,
status, the best value of the main metric, the main test metrics with their 95% bootstrap interval
(from each run's per-sample test_scores.jsonl), throughput and steps. Folders that hold no run (a
refused config's, the one Hydra leaves beside `paths.output_dir`) are skipped with a note.

The plots: the loss curves of all runs overlaid, the best value of the main metric against each swept
key (seed and other categorical keys on a categorical axis), and the metric in job order with the
running best (the progress of a search). A run keeps its colour in every plot.
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

import numpy as np

from gpt_exp.metrics import SAMPLE_SCORES_FILE, WEIGHT_OF, bootstrap_interval, load_sample_scores
from gpt_exp.plots import plot_curves, run_colors
from gpt_exp.text import parse_number
from gpt_exp.tracking import read_metrics

# overrides that say where and how a run is recorded, not what it trains
UNCOMPARED = ("run_name", "logger.", "hydra.", "paths.", "trainer.resume")
CURVES = ["train/loss", "eval/loss"]
SEED_KEYS = ("seed",)  # replicates of one setting: averaged over, and a categorical axis
# test metrics worth a column in the Markdown table, in this order (the CSV has all of them)
SHOWN_TEST = ("rouge1", "rouge2", "rougeL", "accuracy", "macro_f1", "pearson", "spearman", "bits_per_char", "loss",
              "empty_predictions")
BOOTSTRAP = {"n": 1000, "seed": 0}


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
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # per-sample test scores

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
    def steps(self) -> int | None:
        steps = [r["step"] for r in self.rows if "step" in r]
        return max(steps) if steps else None

    @property
    def job_num(self) -> int | None:
        match = re.match(r"(\d+)_", self.path.name)
        return int(match.group(1)) if match else None

    @property
    def has_error_file(self) -> bool:
        return (self.path / "error.txt").is_file()


def holds_run(path: Path) -> bool:
    """A run directory holds what the runner writes; Hydra's .hydra/ alone is no run."""
    return (path / "summary.json").is_file() or (path / "metrics.jsonl").is_file()


def is_run_dir(path: Path) -> bool:
    """A run directory, or a folder Hydra made for one (compare skips it with a note when it holds no run)."""
    return holds_run(path) or (path / ".hydra" / "overrides.yaml").is_file()


def find_run_dirs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(run directories, skipped folders that hold no run) at or under the paths, each once, in path order
    (Hydra job order within a sweep)."""
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
    return [p for p in found if holds_run(p)], [p for p in found if not holds_run(p)]


def find_runs(paths: list[Path]) -> list[Path]:
    return find_run_dirs(paths)[0]


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
               error=record.get("error"), scores=load_sample_scores(path / SAMPLE_SCORES_FILE))


def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value is not the same in every run, in first-seen order."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.overrides if k not in keys and not k.startswith(UNCOMPARED)]
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


# --------------------------------------------------------------------------- settings: runs that differ by seed only

@dataclass
class Setting:
    values: dict[str, str]   # the swept keys but the seed
    runs: list[Run]

    @property
    def finished(self) -> list[Run]:
        return [r for r in self.runs if r.status == "finished"]

    @property
    def best(self) -> float | None:
        values = [r.best for r in self.runs if r.best is not None]
        return statistics.mean(values) if values else None

    @property
    def main(self) -> tuple:
        return next(((r.main_metric, r.greater_is_better) for r in self.runs if r.best is not None), (None, None))


def group_settings(runs: list[Run], keys: list[str]) -> list[Setting]:
    settings: dict[tuple, Setting] = {}
    for run in runs:
        values = {k: run.values[k] for k in keys if k not in SEED_KEYS}
        settings.setdefault(tuple(values.items()), Setting(values, [])).runs.append(run)
    return list(settings.values())


def mean_std(values: list[float]) -> tuple[float, float] | None:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def seed_averaged_interval(runs: list[Run], metric: str) -> tuple[float, float, float] | None:
    """The 95% bootstrap interval over the test samples of the seeds' mean per-sample score (the seeds share the
    test split: sample i is averaged over the seeds, then the samples are resampled); pooled if their splits differ."""
    columns = [r.scores for r in runs if metric in r.scores]
    if not columns:
        return None
    weight = WEIGHT_OF.get(metric)
    values = [c[metric] for c in columns]
    weights = [c[weight] if weight in c else np.ones_like(c[metric]) for c in columns] if weight else None
    if len({len(v) for v in values}) == 1:
        value, weights = np.mean(values, axis=0), (np.mean(weights, axis=0) if weights else None)
    else:
        value, weights = np.concatenate(values), (np.concatenate(weights) if weights else None)
    return bootstrap_interval(value, weights=weights, **BOOTSTRAP)


# --------------------------------------------------------------------------- the comparison

def compare(paths: list[Path], out: Path, per_seed: bool = False) -> dict:
    """Writes comparison.md, comparison.csv and the plots into `out`; returns what it wrote."""
    run_dirs, skipped = find_run_dirs([Path(p) for p in paths])
    runs = [load_run(p) for p in run_dirs]
    if not runs:
        raise FileNotFoundError(f"no run directories under {', '.join(map(str, paths))} "
                                f"(a run directory holds summary.json or metrics.jsonl)"
                                + (f"; {len(skipped)} folder(s) hold only Hydra's .hydra/" if skipped else ""))
    keys = swept_keys(runs)
    for run in runs:
        run.values = {k: run.overrides.get(k, "") for k in keys}
    colors = run_colors([r.path for r in runs])  # job order: a run's colour does not depend on its rank
    runs = _ranked(runs)
    settings = _ranked_settings(group_settings(runs, keys), keys)
    aggregated = not per_seed and any(len(s.runs) > 1 for s in settings)
    out.mkdir(parents=True, exist_ok=True)
    shown = _shown_test_keys(runs)
    header, table = _setting_table(settings, keys, shown) if aggregated else _run_table(runs, keys, shown)
    written = {"markdown": out / "comparison.md", "csv": out / "comparison.csv", "plots": []}
    written["markdown"].write_text(_markdown(header, table, runs, keys, paths, skipped, aggregated))
    _write_csv(written["csv"], runs, keys)
    written["plots"] = _plots(runs, keys, out, colors)
    written.update(runs=runs, swept=keys, settings=settings, skipped=skipped, aggregated=aggregated)
    return written


def _ranked(runs: list[Run]) -> list[Run]:
    """Best first when the runs share a main metric; failed and unfinished runs last."""
    metrics = {(r.main_metric, r.greater_is_better) for r in runs if r.best is not None}
    if len(metrics) != 1:
        return sorted(runs, key=lambda r: r.best is None)
    greater = next(iter(metrics))[1]
    return sorted(runs, key=lambda r: (r.best is None, -(r.best or 0) if greater else (r.best or 0)))


def _ranked_settings(settings: list[Setting], keys: list[str]) -> list[Setting]:
    metrics = {s.main for s in settings if s.best is not None}
    if len(metrics) != 1:
        return sorted(settings, key=lambda s: s.best is None)
    greater = next(iter(metrics))[1]
    return sorted(settings, key=lambda s: (s.best is None, -(s.best or 0) if greater else (s.best or 0)))


def _keys(runs: list[Run], pick) -> list[str]:
    keys: list[str] = []
    for run in runs:
        keys += [k for k in pick(run) if k not in keys]
    return keys


def _best_keys(runs: list[Run]) -> list[str]:
    return _keys(runs, lambda r: [f"best/{r.main_metric}"] if r.main_metric else [])


def _shown_test_keys(runs: list[Run]) -> list[str]:
    present = set(_keys(runs, lambda r: [k for k in r.summary if k.startswith("test/")]))
    mains = [f"test/{r.main_metric}" for r in runs if r.main_metric]
    return [k for k in dict.fromkeys(mains + [f"test/{m}" for m in SHOWN_TEST]) if k in present]


def _run_table(runs: list[Run], keys: list[str], shown: list[str]) -> tuple[list[str], list[list]]:
    best_keys = _best_keys(runs)
    header = ["run", "status", *keys, *best_keys, "best step", "final train/loss", *shown, "tokens/s", "steps"]
    table = []
    for run in runs:
        tests = [_with_interval(run.summary.get(k), _run_interval(run, k)) for k in shown]
        table.append([run.path.name, run.status, *[run.values[k] for k in keys],
                      *[run.summary.get(k) for k in best_keys], run.summary.get("best/step"),
                      run.last("train/loss"), *tests, run.tokens_per_sec, run.steps])
    return header, table


def _setting_table(settings: list[Setting], keys: list[str], shown: list[str]) -> tuple[list[str], list[list]]:
    runs = [r for s in settings for r in s.runs]
    best_keys = _best_keys(runs)
    setting_keys = [k for k in keys if k not in SEED_KEYS]
    header = ["setting", "runs", *setting_keys, *best_keys, "best step", "final train/loss", *shown, "tokens/s",
              "steps"]
    table = []
    for index, setting in enumerate(settings, 1):
        members = setting.runs
        tests = [_with_interval(mean_std([r.summary.get(k) for r in members]),
                                seed_averaged_interval(members, k.split("/", 1)[1])) for k in shown]
        table.append([f"#{index}", _run_count(setting), *[setting.values[k] for k in setting_keys],
                      *[mean_std([r.summary.get(k) for r in members]) for k in best_keys],
                      mean_std([r.summary.get("best/step") for r in members]),
                      mean_std([r.last("train/loss") for r in members]), *tests,
                      mean_std([r.tokens_per_sec for r in members]), mean_std([r.steps for r in members])])
    return header, table


def _run_count(setting: Setting) -> str:
    done, total = len(setting.finished), len(setting.runs)
    return f"{done}/{total} finished" if done < total else f"{total} seeds" if total > 1 else "1 run"


def _run_interval(run: Run, key: str):
    metric = key.split("/", 1)[1]
    return bootstrap_interval(run.scores[metric], weights=run.scores.get(WEIGHT_OF.get(metric, "")),
                              **BOOTSTRAP) if metric in run.scores else None


def _with_interval(value, interval):
    """A table cell: the value (or mean ± std) and its [low, high] 95% interval when the run kept its samples."""
    return (value, interval[1:]) if interval else value


def _write_csv(path: Path, runs: list[Run], keys: list[str]) -> None:
    """Every run, every metric, the intervals' bounds: for a spreadsheet or pandas."""
    best_keys = _keys(runs, lambda r: [k for k in r.summary if k.startswith("best/") and k != "best/step"])
    eval_keys = _keys(runs, lambda r: [f"eval/{r.main_metric}"] if r.main_metric else [])
    test_keys = _keys(runs, lambda r: [k for k in r.summary if k.startswith("test/")])
    interval_keys = [k for k in test_keys if any(k.split("/", 1)[1] in r.scores for r in runs)]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "status", *keys, *best_keys, "best step", *[f"final {k}" for k in eval_keys],
                         "final train/loss", *test_keys,
                         *[f"{k} 95% {end}" for k in interval_keys for end in ("low", "high")],
                         "tokens/s", "steps", "run_name", "overrides", "error", "run_dir"])
        for run in runs:
            bounds = [_run_interval(run, k) for k in interval_keys]
            writer.writerow([run.path.name, run.status, *[run.values[k] for k in keys],
                             *[run.summary.get(k) for k in best_keys], run.summary.get("best/step"),
                             *[run.last(k) for k in eval_keys], run.last("train/loss"),
                             *[run.summary.get(k) for k in test_keys],
                             *[v for b in bounds for v in (b[1:] if b else ("", ""))],
                             run.tokens_per_sec, run.steps, run.name,
                             " ".join(f"{k}={v}" for k, v in run.overrides.items()), run.error or "", str(run.path)])


def _number_cell(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _cell(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], tuple):  # (value, (low, high))
        return f"{_cell(value[0])} [{_number_cell(value[1][0])}, {_number_cell(value[1][1])}]"
    if isinstance(value, tuple):  # (mean, std)
        return f"{_number_cell(value[0])} ± {_number_cell(value[1])}"
    if isinstance(value, float):
        return _number_cell(value)
    return str(value).replace("|", "\\|")


def _markdown(header: list[str], table: list[list], runs: list[Run], keys: list[str], paths: list[Path],
              skipped: list[Path], aggregated: bool) -> str:
    mains = sorted({(r.main_metric, r.greater_is_better) for r in runs if r.main_metric}, key=str)
    lines = [f"# Comparison of {len(runs)} runs", "",
             f"From: {', '.join(str(p) for p in paths)}  ",
             f"Swept: {', '.join(keys) if keys else '(nothing differs between the runs overrides)'}  "]
    if mains:
        lines.append("Main metric: " + "; ".join(f"best/{metric} ({'higher' if greater else 'lower'} is better)"
                                                 for metric, greater in mains) + "  ")
    if aggregated:
        lines.append("Rows: one per setting, mean ± std over its seeds (`--per-seed` for one row per run)  ")
    if any(r.scores for r in runs):
        lines.append(f"[low, high]: 95% bootstrap interval over the test samples ({BOOTSTRAP['n']} resamples"
                     + ("; a setting's seeds averaged per sample" if aggregated else "") + "); ROUGE is F1 x 100  ")
    failed = [r for r in runs if r.status != "finished"]
    if failed:
        lines.append(f"Not finished: {len(failed)} of {len(runs)} runs (listed below the table)  ")
    if skipped:
        lines.append(f"Skipped: {len(skipped)} folder(s) with no summary.json or metrics.jsonl, so no run "
                     f"(a refused config, or the folder Hydra makes beside paths.output_dir): "
                     + ", ".join(str(p) for p in skipped[:5]) + (" ..." if len(skipped) > 5 else "") + "  ")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table]
    if failed:
        lines.append("")
        lines += [f"- {run.path.name}: {_failure(run)}" for run in failed]
    return "\n".join(lines) + "\n"


def _failure(run: Run) -> str:
    if run.status == "incomplete":
        return "incomplete: metrics.jsonl but no summary.json (killed, or still running)"
    where = f"; see {run.path / 'error.txt'}" if run.has_error_file else ""
    return f"{run.status}: {run.error or 'no error recorded'}{where}"


def _label(run: Run, keys: list[str] | None = None) -> str:
    """A legend label from the run's swept values, keys shortened to their last part (optimizer.lr -> lr)."""
    values = run.values if keys is None else {k: run.values[k] for k in keys}
    names = _short_keys(list(values))
    return ",".join(f"{names[k]}={_short(v)}" for k, v in values.items()) or run.path.name


def _short_keys(keys: list[str]) -> dict[str, str]:
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (short if last.count(short) == 1 else k) for k, short in zip(keys, last)}


def _short(value: str) -> str:
    number = parse_number(value)
    return f"{number:.3g}" if number is not None and "." in value else value


def is_categorical(key: str, values) -> bool:
    """A key whose values are names (model, task) or labels of replicates (seed): one tick per value."""
    return key in SEED_KEYS or key.endswith(".seed") or any(parse_number(v) is None for v in values)


def _plots(runs: list[Run], keys: list[str], out: Path, colors: dict) -> list[Path]:
    plots = []
    curves = plot_curves({_label(r): r.rows for r in runs if r.rows}, CURVES, out / "loss_curves.png",
                         "loss curves", colors={_label(r): colors[r.path] for r in runs})
    if curves:
        plots.append(curves)
    by_metric: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.best is not None:
            by_metric.setdefault((run.main_metric, run.greater_is_better), []).append(run)
    for (metric, greater), group in by_metric.items():
        for key in keys:
            if len({r.values[key] for r in group}) > 1:
                plots.append(_metric_vs_key(group, key, metric, keys, out, colors))
        if len(group) > 2 and all(r.job_num is not None for r in group):
            plots.append(_progress(group, metric, greater, out, colors))
    return plots


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


def _metric_vs_key(runs: list[Run], key: str, metric: str, keys: list[str], out: Path, colors: dict) -> Path:
    """best/<metric> against one swept key: a point per run in its colour, and a line through the seeds' mean
    for each combination of the other swept keys but the seed."""
    plt = _figure()
    from matplotlib.ticker import MaxNLocator

    values = [r.values[key] for r in runs]
    categorical = is_categorical(key, values)
    categories = sorted(set(values), key=lambda v: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", v)])
    position = (lambda v: categories.index(v)) if categorical else parse_number  # noqa: E731
    others = [k for k in keys if k != key and k not in SEED_KEYS]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(_label(run, others) if others else "", []).append(run)
    styles = ["-", "--", ":", "-."]
    for index, (label, members) in enumerate(sorted(groups.items())):
        by_x: dict[float, list[float]] = {}
        for run in members:
            by_x.setdefault(position(run.values[key]), []).append(run.best)
        points = sorted((x, statistics.mean(ys)) for x, ys in by_x.items())
        if len(points) > 1:
            ax.plot(*zip(*points), color="0.35", linestyle=styles[index % len(styles)], linewidth=1, zorder=1,
                    label=(f"{label} (mean)" if label else "mean") if len(groups) > 1 or len(members) > len(points)
                    else None)
    for run in runs:
        ax.scatter(position(run.values[key]), run.best, color=colors[run.path], s=36, zorder=2, label=_label(run))
    if categorical:
        ax.set_xticks(range(len(categories)), categories, rotation=20 if len(categories) > 4 else 0)
    else:
        numbers = [parse_number(v) for v in values]
        if all(n > 0 for n in numbers) and max(numbers) / min(numbers) >= 20:
            ax.set_xscale("log")
        elif all(float(n).is_integer() for n in numbers):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps, batch sizes: no 1.5 ticks
    ax.set_xlabel(key)
    ax.set_ylabel(f"best/{metric}")
    ax.grid(alpha=0.3)
    ax.set_title(f"best/{metric} against {key} ({len(runs)} runs)")
    path = out / f"{_safe(metric)}_vs_{_safe(key)}.png"
    _save(fig, ax, path)
    return path


def _progress(runs: list[Run], metric: str, greater: bool, out: Path, colors: dict) -> Path:
    """The metric in job order and the best so far: how a search converges."""
    plt = _figure()
    from matplotlib.ticker import MaxNLocator

    ordered = sorted(runs, key=lambda r: r.job_num)
    jobs = [r.job_num for r in ordered]
    values = [r.best for r in ordered]
    pick = max if greater else min
    running = [pick(values[:i + 1]) for i in range(len(values))]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.step(jobs, running, where="post", color="0.35", label="best so far", zorder=1)
    for run in ordered:
        ax.scatter(run.job_num, run.best, color=colors[run.path], s=36, zorder=2, label=_label(run))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # job numbers are whole
    ax.set_xlabel("job number")
    ax.set_ylabel(f"best/{metric}")
    ax.grid(alpha=0.3)
    ax.set_title(f"best/{metric} by job ({'higher' if greater else 'lower'} is better)")
    path = out / f"{_safe(metric)}_by_job.png"
    _save(fig, ax, path)
    return path


def _save(fig, ax, path: Path) -> None:
    from gpt_exp.plots import legend_below

    legend_below(fig, [ax])
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight": the legend below the axes stays in the picture
    import matplotlib.pyplot as plt

    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpt_exp compare",
        description="Compare runs from their local records: a Markdown and CSV table and PNG plots.")
    parser.add_argument("paths", nargs="+", type=Path, help="run directories or sweep (multirun) directories")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: <sweep dir>/comparison for one sweep dir, else ./comparison)")
    parser.add_argument("--per-seed", action="store_true",
                        help="one Markdown row per run, not one per setting with the mean ± std over its seeds")
    args = parser.parse_args(argv)
    out = args.out
    if out is None:
        single = len(args.paths) == 1 and args.paths[0].is_dir() and not is_run_dir(args.paths[0])
        out = args.paths[0] / "comparison" if single else Path("comparison")
    try:
        written = compare(args.paths, out, per_seed=args.per_seed)
    except FileNotFoundError as error:
        print(f"compare: {error}", file=sys.stderr)
        return 2
    for folder in written["skipped"]:
        print(f"compare: skipped {folder}: no summary.json or metrics.jsonl, so no run", file=sys.stderr)
    print(written["markdown"].read_text())
    print(f"table: {written['markdown']}  {written['csv']}")
    for plot in written["plots"]:
        print(f"plot:  {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
