"""GPT-1's ablation (its Table 5) at CPU scale: the pre-training corpus and the results table.

    python -m gpt_exp.tools.ablation corpus                      # 1. unlabeled text of the four tasks' train splits
    python -m gpt_exp experiment=gpt1_pretrain             # 2. LM pre-training on it
    python -m gpt_exp -m +sweep=gpt1_ablation              # 3. 4 tasks x {pre-trained, scratch} x {lambda 0.5, 0} x seeds
    python -m gpt_exp.tools.ablation table multirun/gpt1_ablation/DATE_TIME   # 4. means +- std over seeds

The paper pre-trains on BooksCorpus; no such corpus ships in a package reachable here, so step 1
collects the *unlabeled text* of the four tasks' training splits (review snippets, Wikipedia
evidence and claims, STS-B sentences, Social IQa contexts and answers), never their labels and never
a validation or test text. That is GPT-1's semi-supervised setting in miniature: much more
unlabeled text than labeled examples (the fine-tunes see a few thousand labeled records each).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from omegaconf import OmegaConf

# task -> (built-in dataset, its text fields, metric shown in the table (and a second one), label)
TASKS = {
    "classification": ("movie_reviews", ("text",), ("accuracy", "macro_f1"), "movie reviews (acc)"),
    "entailment": ("vitaminc", ("premise", "hypothesis"), ("accuracy", "macro_f1"), "VitaminC NLI (acc)"),
    "similarity": ("stsb_en", ("text_a", "text_b"), ("pearson", "spearman"), "STS-B (Pearson)"),
    "multiple_choice": ("social_iqa", ("context", "choices"), ("accuracy",), "Social IQa (acc)"),
}
ARMS = [  # (pre-trained, auxiliary LM loss) in the order of GPT-1's Table 5; {lam} = the lambdas found
    ((True, True), "pre-trained, aux LM (λ={lam}) [GPT-1]"),
    ((True, False), "pre-trained, no aux LM (λ=0)"),
    ((False, True), "from scratch, aux LM (λ={lam})"),
    ((False, False), "from scratch, no aux LM (λ=0)"),
]
CORPUS = "corpora/gpt1_tasks"


# --------------------------------------------------------------------------- 1. the corpus

def write_corpus(cache_dir: str | Path | None = None) -> dict[str, Path]:
    """{train, validation, test} -> JSON-lines {"text"} files of the tasks' unlabeled text, deduplicated.

    train comes from the tasks' train splits; validation and test (for the LM's own evaluation)
    are the two halves of their validation splits. The tasks' test splits are never read.
    """
    from gpt_exp.data.cache import cache_root, sha256_hex
    from gpt_exp.data.sources import prepare

    root = cache_root(cache_dir)
    folder = root / CORPUS
    texts: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    seen: set[str] = set()
    counts = {}
    for dataset, fields, _, _ in TASKS.values():
        files = prepare(dataset, cache_dir=cache_dir)
        counts[dataset] = {}
        for source_split in ("train", "validation"):
            added = 0
            for line in files[source_split].read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                for field in fields:
                    values = record[field] if isinstance(record[field], list) else [record[field]]
                    for text in values:
                        text = " ".join(str(text).split())
                        if not text or text in seen:
                            continue
                        seen.add(text)
                        split = source_split if source_split == "train" else \
                            ("validation" if int(sha256_hex(text), 16) % 2 else "test")
                        texts[split].append(text)
                        added += 1
            counts[dataset][source_split] = added
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, items in texts.items():
        paths[split] = folder / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in items),
                                encoding="utf-8")
    info = {"what": "unlabeled text of the GPT-1 ablation tasks' train (-> train) and validation (-> validation, "
                    "test by sha256 parity) splits, whitespace squashed, each text once",
            "texts_per_dataset": counts, "records": {s: len(t) for s, t in texts.items()},
            "words": {s: sum(len(t.split()) for t in items) for s, items in texts.items()}}
    (folder / "info.json").write_text(json.dumps(info, indent=2))
    return paths


# --------------------------------------------------------------------------- 4. the table

def collect(paths: list[Path]) -> list[dict]:
    """One row per finished fine-tune run under `paths`: task, arm, seed and its test metrics."""
    rows = []
    for summary_path in sorted(p for path in paths for p in Path(path).rglob("summary.json")):
        run = summary_path.parent
        summary = json.loads(summary_path.read_text())
        config_path = run / "config.yaml"
        if summary.get("status") != "finished" or not config_path.exists():
            continue
        cfg = OmegaConf.load(config_path)
        task = cfg.task.name
        if task not in TASKS:
            continue
        rows.append({"run": str(run), "task": task, "pretrained": bool(cfg.model.get("init_from")),
                     "aux_lm": float(cfg.task.lm_coef) > 0, "lm_coef": float(cfg.task.lm_coef), "seed": int(cfg.seed),
                     "best_step": summary["summary"].get("best/step"),
                     **{k: v for k, v in summary["summary"].items() if k.startswith("test/")}})
    return rows


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan  # one seed: no spread


def table(rows: list[dict]) -> str:
    """Markdown: one row per arm, one column per task (mean +- std over seeds, x100), and their average."""
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    header = ["setting", *[TASKS[t][3] for t in tasks], "average", "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (pretrained, aux), label in ARMS:
        cells, means, seeds = [], [], set()
        for task in tasks:
            metric = TASKS[task][2][0]
            found = [r for r in rows if r["task"] == task and r["pretrained"] == pretrained and r["aux_lm"] == aux]
            seeds |= {r["seed"] for r in found}
            mean, std = _mean_std([r.get(f"test/{metric}") for r in found])
            extra = ""
            if len(TASKS[task][2]) > 1:
                second = TASKS[task][2][1]
                m2, _ = _mean_std([r.get(f"test/{second}") for r in found])
                extra = f" <sub>{second.replace('_', '-')} {100 * m2:.1f}</sub>" if math.isfinite(m2) else ""
            spread = f" ± {100 * std:.1f}" if math.isfinite(std) else ""
            cells.append(f"{100 * mean:.1f}{spread}{extra}" if math.isfinite(mean) else "–")
            means.append(mean)
        average = statistics.fmean(means) if means and all(math.isfinite(m) for m in means) else math.nan
        lambdas = sorted({r["lm_coef"] for r in rows if r["pretrained"] == pretrained and r["aux_lm"] == aux})
        label = label.format(lam="/".join(f"{v:g}" for v in lambdas) or "?")
        lines.append("| " + " | ".join([label, *cells, f"{100 * average:.1f}" if math.isfinite(average) else "–",
                                         str(len(seeds))]) + " |")
    return "\n".join(lines)


def lm_table(rows: list[dict]) -> str:
    """Markdown: the test LM loss (nats per token of the task's own text) per arm and task, mean +- std.

    It shows what the auxiliary objective does to the language model inside the fine-tuned network:
    kept (or learned) with lambda > 0, drifting away without.
    """
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    lines = ["| setting | " + " | ".join(TASKS[t][3].split(" (")[0] for t in tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
    for (pretrained, aux), label in ARMS:
        lambdas = sorted({r["lm_coef"] for r in rows if r["pretrained"] == pretrained and r["aux_lm"] == aux})
        cells = []
        for task in tasks:
            mean, std = _mean_std([r.get("test/lm_loss") for r in rows
                                   if r["task"] == task and r["pretrained"] == pretrained and r["aux_lm"] == aux])
            spread = f" ± {std:.2f}" if math.isfinite(std) else ""
            cells.append(f"{mean:.2f}{spread}" if math.isfinite(mean) else "–")
        lines.append("| " + " | ".join([label.format(lam="/".join(f"{v:g}" for v in lambdas) or "?"), *cells]) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> Path | None:
    """Grouped bars: one group per task, one bar per arm (mean), whiskers = std, dots = seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    if not tasks:
        return None
    fig, ax = plt.subplots(figsize=(2.6 * len(tasks) + 2, 4.2))
    width = 0.8 / len(ARMS)
    for a, ((pretrained, aux), label) in enumerate(ARMS):
        for t, task in enumerate(tasks):
            metric = TASKS[task][2][0]
            values = [r.get(f"test/{metric}") for r in rows
                      if r["task"] == task and r["pretrained"] == pretrained and r["aux_lm"] == aux]
            values = [100 * v for v in values if v is not None and math.isfinite(v)]
            if not values:
                continue
            x = t + (a - (len(ARMS) - 1) / 2) * width
            mean, std = _mean_std(values)
            name = label.format(lam="/".join(sorted({f"{r['lm_coef']:g}" for r in rows if r["aux_lm"]})) or "?")
            ax.bar(x, mean, width, yerr=std if math.isfinite(std) else None, color=f"C{a}", label=name if t == 0 else None, capsize=3, alpha=0.85)
            ax.scatter([x] * len(values), values, color="k", s=8, zorder=3)
    ax.set_xticks(range(len(tasks)), [TASKS[t][3] for t in tasks])
    ax.set_ylabel("test metric x 100")
    ax.set_title("GPT-1 ablation at CPU scale (mean ± std over seeds)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpt_exp.tools.ablation", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    corpus = commands.add_parser("corpus", help="write the pre-training corpus (the tasks' unlabeled train text)")
    corpus.add_argument("--cache-dir", default=None, help="default: $GPT_EXP_CACHE or ~/.cache/gpt_exp")
    report = commands.add_parser("table", help="the ablation table (Markdown) and a bar plot from run directories")
    report.add_argument("paths", nargs="+", type=Path, help="sweep or run directories")
    report.add_argument("--out", type=Path, default=None, help="where ablation.md / .png / .json go (default: the first path)")
    args = parser.parse_args(argv)
    if args.command == "corpus":
        paths = write_corpus(args.cache_dir)
        info = json.loads((paths["train"].parent / "info.json").read_text())
        for split, path in paths.items():
            print(f"{split:10s} {info['records'][split]:7d} texts {info['words'][split]:9d} words  {path}")
        return 0
    rows = collect(args.paths)
    if not rows:
        print(f"no finished fine-tune runs under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1
    out = args.out or args.paths[0]
    out.mkdir(parents=True, exist_ok=True)
    text = (f"Test metrics x 100, mean ± std over seeds ({len(rows)} runs):\n\n{table(rows)}\n\n"
            f"Test LM loss on each task's text (nats per token; a model that knows nothing scores "
            f"ln(vocabulary size)):\n\n{lm_table(rows)}")
    (out / "ablation.md").write_text(text + "\n")
    (out / "ablation.json").write_text(json.dumps(rows, indent=2))
    png = plot(rows, out / "ablation.png")
    print(text)
    print(f"\n{len(rows)} runs; written {out / 'ablation.md'}, {out / 'ablation.json'}" + (f", {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
