"""Loss curves as PNG files, from the local metrics records; the colours and legends all plots share."""
from __future__ import annotations

from pathlib import Path


def run_colors(keys: list) -> dict:
    """One colour per run, in a fixed order (tab10, then tab20's lighter shades, then a wheel), so a run has
    the same colour in every plot of a comparison."""
    import matplotlib

    palette = list(matplotlib.colormaps["tab10"].colors) + list(matplotlib.colormaps["tab20"].colors[1::2])
    if len(keys) > len(palette):
        wheel = matplotlib.colormaps["hsv"]
        palette += [wheel(i / (len(keys) - len(palette))) for i in range(len(keys) - len(palette))]
    return {key: palette[i] for i, key in enumerate(keys)}


def legend_below(fig, axes) -> None:
    """One legend for the figure, below the axes, in as many columns as fit: it never covers a curve."""
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label and label not in handles:
                handles[label] = handle
                labels.append(label)
    if len(labels) < 2:
        return
    columns = max(1, min(len(labels), int(fig.get_figwidth() * 72 / (6.5 * max(len(x) for x in labels) + 30))))
    fig.legend([handles[x] for x in labels], labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=columns,
               fontsize=7, frameon=False)


def plot_curves(series: dict[str, list[dict]], keys: list[str], path: Path, title: str = "",
                colors: dict[str, object] | None = None) -> Path | None:
    """One panel per key; one line per run in `series` (run label -> metrics rows), in `colors[label]` if given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    keys = [k for k in keys if any(k in row for rows in series.values() for row in rows)]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, rows in series.items():
            points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), label=label, marker="." if len(points) < 30 else None,
                        color=(colors or {}).get(label))
        ax.set_xlabel("optimizer step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if len(series) > 1:
        legend_below(fig, axes[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
