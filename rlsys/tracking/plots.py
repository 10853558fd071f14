"""Learning curves from metric records (the lines of a metrics.jsonl), one PNG per metric group."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

_SKIP = {"step", "time"}


def plot_metrics(records: list[dict], out_dir: str | Path, max_per_figure: int = 6) -> list[Path]:
    """Group the numeric series of metric `records` by their prefix ("train/", "eval/", ...) and draw each group.

    Returns the written PNG paths. Series are drawn against `step` when present.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for i, rec in enumerate(records):
        x = rec.get("step", i)
        for key, value in rec.items():
            if key not in _SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
                series[key].append((x, float(value)))
    groups: dict[str, list[str]] = defaultdict(list)
    for key in sorted(series):
        groups[key.split("/")[0] if "/" in key else "misc"].append(key)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for group, keys in groups.items():
        for chunk_start in range(0, len(keys), max_per_figure):
            chunk = keys[chunk_start : chunk_start + max_per_figure]
            fig, axes = plt.subplots(len(chunk), 1, figsize=(7, 2.2 * len(chunk)), squeeze=False)
            for ax, key in zip(axes[:, 0], chunk):
                xs, ys = zip(*series[key])
                ax.plot(xs, ys, marker="." if len(xs) < 50 else None)
                ax.set_title(key, fontsize=9)
                ax.grid(alpha=0.3)
            axes[-1, 0].set_xlabel("step")
            fig.tight_layout()
            suffix = "" if chunk_start == 0 else f"_{chunk_start // max_per_figure}"
            path = out / f"{group.replace('/', '_')}{suffix}.png"
            fig.savefig(path, dpi=80)
            plt.close(fig)
            written.append(path)
    return written
