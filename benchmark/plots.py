"""Report plots (matplotlib, Agg backend), written next to ``LEADERBOARD.md``.

- ``accuracy_vs_latency_<dataset>_<split>_<setting>[_<hw_id>].png``: mean test
  score (error bar: std over seeds) of every clean config against its
  end-to-end ``online@10`` latency (``latency_online10_ms``, log scale); the
  Pareto front (no other config is both faster and more accurate) is drawn
  as a step line with ringed markers. One plot per hardware id when records
  come from several machines (latency columns never mix hardware).
- ``accuracy_vs_noise_<dataset>_<split>_<setting>.png``: mean test score
  against the perturbation level, one line per method, one panel per
  curve family present: test-time feature noise / edge drop / edge add on
  models trained clean (level 0 = the clean score) and the train-time
  families (noisy features before training, poisoning).

Figures have fixed sizes (``dpi`` 100, see :func:`latency_figure_size` and
:func:`noise_figure_size`) so the PNGs' pixel sizes are known.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd

DPI = 100
LATENCY_COL = "latency_online10_ms"
FAMILIES = [  # (panel title, source, key): test-time columns robust_<key>_<level>; train-time perturbation kinds
    ("test-time feature noise a", "test", "feat"),
    ("test-time edge drop p", "test", "drop"),
    ("test-time edge add p", "test", "add"),
    ("train-time feature noise a", "train", "train_noise"),
    ("poisoning: edge drop p", "train", "poison_drop"),
    ("poisoning: edge add p", "train", "poison_add"),
]


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _safe(s) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", str(s)).strip("-") or "x"


def method_label(row) -> str:
    """``teacher->student distiller``, or ``student (distiller)`` without a teacher."""
    t = row.get("teacher")
    if t is None or t == "-" or (isinstance(t, float) and math.isnan(t)):
        return f"{row['student']} ({row['distiller']})"
    return f"{t}->{row['student']} {row['distiller']}"


def pareto_front(latency: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Boolean mask of the points no other point dominates (lower-or-equal latency and higher score, or
    lower latency and equal-or-higher score). NaN points are never on the front."""
    lat, sc = np.asarray(latency, float), np.asarray(score, float)
    ok = np.isfinite(lat) & np.isfinite(sc)
    front = np.zeros(len(lat), dtype=bool)
    for i in np.flatnonzero(ok):
        dom = ok & (lat <= lat[i]) & (sc >= sc[i]) & ((lat < lat[i]) | (sc > sc[i]))
        front[i] = not dom.any()
    return front


def latency_figure_size():
    """Width, height in inches of the accuracy-vs-latency figure (pixels: x ``DPI``)."""
    return (9.0, 5.5)


def noise_figure_size(panels: int):
    """Width, height in inches of the accuracy-vs-noise figure with ``panels`` panels (3 per row, legend at right)."""
    ncols = min(3, max(panels, 1))
    nrows = math.ceil(max(panels, 1) / 3)
    return (4.0 * ncols + 3.5, 3.6 * nrows)


def _clean(lb: pd.DataFrame) -> pd.DataFrame:
    if "perturbation_kind" in lb:
        return lb[lb["perturbation_kind"].isna()]
    return lb


def plot_accuracy_vs_latency(g: pd.DataFrame, col: str, title: str, path: Path) -> Optional[Path]:
    """One accuracy-vs-latency figure for the leaderboard rows ``g`` (latency column ``col``); None if no data."""
    g = g[g[col].notna() & g["test_mean"].notna()] if col in g else g.iloc[:0]
    if g.empty:
        return None
    plt = _mpl()
    fig, ax = plt.subplots(figsize=latency_figure_size(), dpi=DPI, layout="constrained")
    lat, acc = g[col].to_numpy(float), g["test_mean"].to_numpy(float)
    std = g["test_std"].to_numpy(float) if "test_std" in g else np.zeros(len(g))
    front = pareto_front(lat, acc)
    labels = [method_label(r) for _, r in g.iterrows()]
    for i, lab in enumerate(labels):
        ax.errorbar(lat[i], acc[i], yerr=None if not np.isfinite(std[i]) else std[i], fmt="o", ms=6,
                    capsize=3, label=lab, zorder=3)
    order = np.argsort(lat[front])
    fl, fa = lat[front][order], acc[front][order]
    ax.step(fl, fa, where="post", color="black", lw=1.2, ls="--", zorder=2, label="Pareto front")
    ax.scatter(fl, fa, s=160, facecolors="none", edgecolors="black", lw=1.5, zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel("online@10 latency, end to end (ms, log scale)")
    ax.set_ylabel("test score (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _curves(g: pd.DataFrame, source: str, key: str):
    """``[(label, levels, scores)]`` for one curve family (level 0 = clean test score)."""
    clean = _clean(g)
    out = []
    if source == "test":
        cols = sorted((c for c in g.columns if c.startswith(f"robust_{key}_") and g[c].notna().any()),
                      key=lambda c: float(c.rsplit("_", 1)[1]))
        if not cols:
            return []
        levels = [0.0] + [float(c.rsplit("_", 1)[1]) for c in cols]
        for _, r in clean.iterrows():
            ys = [r["test_mean"]] + [r[c] for c in cols]
            if np.isfinite(np.asarray(ys[1:], float)).any():
                out.append((method_label(r), levels, ys))
        return out
    if "perturbation_kind" not in g:
        return []
    pert = g[g["perturbation_kind"] == key]
    for _, r in clean.iterrows():
        mine = pert[pert["clean_key"] == r["clean_key"]].sort_values("perturbation_level")
        if len(mine):
            out.append((method_label(r), [0.0] + list(mine["perturbation_level"].astype(float)),
                        [r["test_mean"]] + list(mine["test_mean"].astype(float))))
    return out


def plot_accuracy_vs_noise(g: pd.DataFrame, title: str, path: Path) -> Optional[Path]:
    """Accuracy-vs-perturbation-level panels for the leaderboard rows ``g``; None if no curve exists."""
    panels = [(t, c) for t, src, key in FAMILIES if (c := _curves(g, src, key))]
    if not panels:
        return None
    plt = _mpl()
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / 3)
    fig, axes = plt.subplots(nrows, ncols, figsize=noise_figure_size(len(panels)), dpi=DPI, squeeze=False,
                             layout="constrained")
    labels = sorted({lab for _, curves in panels for lab, _, _ in curves})
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    colour = {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}
    for ax, (ptitle, curves) in zip(axes.flat, panels):
        for lab, xs, ys in curves:
            ax.plot(xs, ys, marker="o", ms=4, color=colour[lab], label=lab)
        ax.set_title(ptitle, fontsize=9)
        ax.set_xlabel("level")
        ax.set_ylabel("test score (%)")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colour[lab], marker="o", ms=4) for lab in labels]
    fig.legend(handles, labels, loc="outside right center", fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def write_plots(lb: pd.DataFrame, out_dir) -> List[Path]:
    """Write every plot for the leaderboard ``lb`` (:func:`gkd_bench.report.leaderboard`) into ``out_dir``,
    and delete the plots of an earlier report there that this one does not write (``accuracy_vs_latency_*``
    / ``accuracy_vs_noise_*`` PNGs: e.g. the unsuffixed latency plots once records come from a second
    machine and every latency plot is per hardware id), so the folder holds only plots of the current
    records.

    Returns:
        the written PNG paths (none when ``lb`` lacks the needed columns).
    """
    out_dir = Path(out_dir)
    paths = _write_plots(lb, out_dir)
    keep = {p.name for p in paths}
    for old in list(out_dir.glob("accuracy_vs_latency_*.png")) + list(out_dir.glob("accuracy_vs_noise_*.png")):
        if old.name not in keep:
            old.unlink()
    return paths


def _write_plots(lb: pd.DataFrame, out_dir: Path) -> List[Path]:
    paths: List[Path] = []
    if lb.empty or "test_mean" not in lb:
        return paths
    lat_cols = [c for c in lb.columns if c == LATENCY_COL or c.startswith(LATENCY_COL + "@")]
    for (ds, split, setting), g in lb.groupby(["dataset", "split", "setting"], sort=True):
        stem = f"{_safe(ds)}_{_safe(split)}_{_safe(setting)}"
        for col in lat_cols:
            hw = col.split("@", 1)[1] if "@" in col else None
            hw_note = f", hardware {hw}" if hw else ""
            p = plot_accuracy_vs_latency(
                _clean(g), col, f"{ds} ({split}, {setting}): accuracy vs online@10 latency{hw_note}",
                out_dir / f"accuracy_vs_latency_{stem}{'_' + _safe(hw) if hw else ''}.png")
            if p:
                paths.append(p)
        p = plot_accuracy_vs_noise(g, f"{ds} ({split}, {setting}): accuracy vs perturbation level",
                                   out_dir / f"accuracy_vs_noise_{stem}.png")
        if p:
            paths.append(p)
    return paths


def markdown_section(paths: List[Path]) -> str:
    """``## Plots`` with one image link per PNG (relative file names)."""
    if not paths:
        return ""
    lines = ["## Plots\n"]
    for p in paths:
        name = Path(p).name
        what = "accuracy vs online@10 latency (Pareto front dashed)" if name.startswith("accuracy_vs_latency") \
            else "accuracy vs perturbation level"
        lines.append(f"![{what}: {Path(p).stem}]({name})\n")
    return "\n".join(lines)
