"""Leaderboards from records (DESIGN.md "Records, leaderboards, reports").

Records are the only source: ``runs.csv`` (one row per run), ``leaderboard.csv``
(one row per config: mean, sample std (ddof=1), n per metric column) and
``LEADERBOARD.md``. ``gain_vs_none`` pairs each config's seeds with the same
student (model and hyperparameters) trained by ``none`` on the same data;
``gain_within_std`` flags a mean gain no larger than the std of the paired
differences. Latency columns never mix hardware: with several ``hw_id`` in one
table, latency is reported per hardware id.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from gkd_bench.records import iter_records

GROUP = ["dataset", "split", "setting", "teacher", "student", "distiller"]
METRIC_COLS = ["test", "val", "test_tran", "test_ind", "teacher_test", "teacher_test_ind", "teacher_test_tran"]
MEAN_COLS = ["student_params", "teacher_params", "latency_full_ms", "teacher_latency_full_ms", "speedup_full",
             "train_s", "best_epoch"]
DEFINITIONS = {
    "test": "test score in % (accuracy, micro-F1 or ROC-AUC per the metric column); inductive: test_prod",
    "test_tran / test_ind": "inductive setting: observed test nodes / held-out test nodes (full graph at test time)",
    "± std (n)": "sample standard deviation (ddof=1) over n seeds",
    "teacher_test": "the teacher's test score, mean over the same seeds",
    "gain_vs_none": "mean over seeds of (this config - same student trained by `none`), paired by seed; "
                    "'~' marks a gain within one std of the paired differences",
    "latency_full_ms": "median full-graph forward pass (all nodes), eval mode, torch.utils.benchmark, this hardware",
    "speedup_full": "teacher latency / student latency, measured in the same process on the same input",
    "params": "number of scalar parameters",
}


def load_runs(results_dir, suites: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """All records under ``results_dir/runs`` as a DataFrame (one row per run)."""
    rows = list(iter_records(Path(results_dir), list(suites) if suites else None))
    return pd.DataFrame(rows)


def _student_key(spec_json: str) -> str:
    s = json.loads(spec_json)
    return json.dumps([s["dataset"], s["protocol"], s["setting"], s["student"]["model"],
                       s["student"]["hparams"], s.get("perturbation"), s.get("dataset_options")], sort_keys=True)


def leaderboard(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per config of the ``ok`` runs: mean, std (ddof=1) and n per metric; paired gains."""
    if runs.empty or "status" not in runs:
        return pd.DataFrame()
    ok = runs[runs["status"] == "ok"].copy()
    if ok.empty:
        return pd.DataFrame()
    for c in GROUP:
        ok[c] = ok[c].fillna("-")
    ok["skey_"] = ok["spec"].map(_student_key)
    none = ok[ok["distiller_name"] == "none"].set_index(["skey_", "seed"])["test"]
    none = none[~none.index.duplicated()]
    ok["gain_"] = [t - none.get((k, s), np.nan) for t, k, s in zip(ok["test"], ok["skey_"], ok["seed"])]
    rows = []
    multi_hw = ok["hw_id"].nunique() > 1 if "hw_id" in ok else False
    for cid, g in ok.groupby("config_id", sort=False):
        first = g.iloc[0]
        row = {c: first[c] for c in GROUP}
        row.update(metric=first.get("metric"), n=len(g))
        for c in METRIC_COLS:
            if c in g and g[c].notna().any():
                row[f"{c}_mean"] = g[c].mean()
                row[f"{c}_std"] = g[c].std(ddof=1) if g[c].notna().sum() > 1 else np.nan
        if first["distiller_name"] != "none" and g["gain_"].notna().any():
            row["gain_vs_none"] = g["gain_"].mean()
            sd = g["gain_"].std(ddof=1)
            row["gain_vs_none_std"] = sd
            row["gain_within_std"] = bool(np.isfinite(sd) and abs(row["gain_vs_none"]) <= sd)
        for c in MEAN_COLS:
            if c in g and g[c].notna().any():
                if multi_hw and ("latency" in c or "speedup" in c):
                    for hw, gh in g.groupby("hw_id"):
                        row[f"{c}@{hw}"] = gh[c].median()
                else:
                    row[c] = g[c].median() if ("latency" in c or "speedup" in c) else g[c].mean()
        row.update(hw_id=",".join(sorted(g["hw_id"].dropna().unique())) if "hw_id" in g else None,
                   config_id=cid, hparams=first["hparams"])
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(mean, std, n=None) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return ""
    s = f"{mean:.2f}"
    if std is not None and not (isinstance(std, float) and np.isnan(std)):
        s += f" ± {std:.2f}"
    if n is not None:
        s += f" ({n})"
    return s


def markdown_table(lb: pd.DataFrame) -> str:
    """The leaderboard as Markdown sections, one per (dataset, split, setting)."""
    out = []
    for (ds, split, setting), g in lb.groupby(["dataset", "split", "setting"], sort=True):
        metric = g["metric"].iloc[0]
        out.append(f"### {ds} — {split} split, {setting} ({metric})\n")
        g = g.sort_values("test_mean", ascending=False)
        t = pd.DataFrame({
            "teacher": g["teacher"], "student": g["student"], "distiller": g["distiller"],
            "test": [_pm(r.get("test_mean"), r.get("test_std"), r.get("n")) for _, r in g.iterrows()],
        })
        if "test_ind_mean" in g:
            t["test_tran"] = [_pm(r.get("test_tran_mean"), r.get("test_tran_std")) for _, r in g.iterrows()]
            t["test_ind"] = [_pm(r.get("test_ind_mean"), r.get("test_ind_std")) for _, r in g.iterrows()]
        if "teacher_test_mean" in g:
            t["teacher_test"] = [_pm(r.get("teacher_test_mean"), None) for _, r in g.iterrows()]
        if "gain_vs_none" in g:
            t["gain_vs_none"] = [
                "" if pd.isna(r.get("gain_vs_none")) else
                f"{r['gain_vs_none']:+.2f}{' ~' if r.get('gain_within_std') else ''}" for _, r in g.iterrows()]
        for c in g.columns:
            if c.startswith(("student_params", "teacher_params")):
                t[c] = g[c].map(lambda v: "" if pd.isna(v) else f"{int(v):,}")
            elif c.startswith(("latency_full_ms", "teacher_latency_full_ms")):
                t[c] = g[c].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
            elif c.startswith("speedup_full"):
                t[c] = g[c].map(lambda v: "" if pd.isna(v) else f"{v:.1f}x")
        out.append(t.to_markdown(index=False))
        out.append("")
    return "\n".join(out)


def problems_table(runs: pd.DataFrame) -> str:
    """Markdown list of configs that did not finish: skipped datasets and failures, with reasons."""
    if runs.empty or "status" not in runs:
        return ""
    bad = runs[runs["status"] != "ok"]
    if bad.empty:
        return ""
    rows = []
    for (ds, status), g in bad.groupby(["dataset", "status"]):
        reason = str(g["error"].dropna().iloc[0]).splitlines()[0] if g["error"].notna().any() else ""
        rows.append({"dataset": ds, "status": status, "runs": len(g), "reason": reason})
    return "## Not run / failed\n\n" + pd.DataFrame(rows).to_markdown(index=False) + "\n"


def write_report(results_dir, suite: str, out_dir=None, formats: Sequence[str] = ("markdown", "csv")) -> List[Path]:
    """Write ``runs.csv``, ``leaderboard.csv`` and/or ``LEADERBOARD.md`` for ``suite``.

    Args:
        results_dir: folder holding ``runs/<suite>/``.
        suite: suite name.
        out_dir: destination (default ``results_dir/<suite>``).
        formats: any of ``markdown``, ``csv``.

    Returns:
        the written paths.

    Raises:
        FileNotFoundError: no records for ``suite``.
        ValueError: unknown format.
    """
    bad = sorted(set(formats) - {"markdown", "csv"})
    if bad:
        raise ValueError(f"unknown report format(s) {bad}; choose markdown or csv")
    runs = load_runs(results_dir, [suite])
    if runs.empty:
        raise FileNotFoundError(f"no records for suite {suite!r} under {Path(results_dir) / 'runs' / suite}")
    out = Path(out_dir) if out_dir else Path(results_dir) / suite
    out.mkdir(parents=True, exist_ok=True)
    lb = leaderboard(runs)
    paths = []
    if "csv" in formats:
        runs.drop(columns=["spec"], errors="ignore").to_csv(out / "runs.csv", index=False)
        lb.to_csv(out / "leaderboard.csv", index=False)
        paths += [out / "runs.csv", out / "leaderboard.csv"]
    if "markdown" in formats:
        parts = [f"# Leaderboard: suite `{suite}`\n",
                 f"{len(runs)} records, {int((runs['status'] == 'ok').sum())} ok. "
                 "Generated by `gkd-bench report` from the records in "
                 f"`runs/{suite}/`; do not edit by hand.\n"]
        if not lb.empty:
            parts.append(markdown_table(lb))
        parts.append(problems_table(runs))
        parts.append("## Column definitions\n")
        parts += [f"- **{k}**: {v}" for k, v in DEFINITIONS.items()]
        envs = runs.drop_duplicates("hw_id") if "hw_id" in runs else runs.iloc[:0]
        parts.append("\n## Hardware\n")
        for _, r in envs.iterrows():
            parts.append(f"- `{r['hw_id']}`: {r.get('cpu_model')}, {r.get('cpu_cores')} cores, "
                         f"{r.get('threads')} threads, {r.get('device')}; torch {r.get('torch_version')}, "
                         f"dgl {r.get('dgl_version')}")
        (out / "LEADERBOARD.md").write_text("\n".join(parts) + "\n")
        paths.append(out / "LEADERBOARD.md")
    return paths
