"""Paper vs ours: published reference numbers next to the leaderboard (DESIGN.md "Records, leaderboards").

Reference numbers live in ``results/reference/<source>.csv`` (one file per
source, columns :data:`REFERENCE_COLUMNS`, values in %). Records are the only
source of "ours": they are read with :func:`gkd_bench.report.load_runs` and
aggregated per suite with :func:`gkd_bench.report.leaderboard`.

Each reference row is mapped to leaderboard rows through the explicit tables
below (dataset name, split protocol, setting and score column, model labels,
distiller labels). A suite reproduces a published row when it uses these
labels, e.g. GLNN's rows: ``SAGE`` = student ``sage`` with distiller ``none``,
``MLP`` = student ``mlp`` with ``none``, ``GLNN`` = teacher ``sage``, student
``mlp``, distiller ``kd`` (see ``suites/ci.yaml``).

Verdict per cell (``diff = ours - paper`` in points; ``s`` = the larger of the
published std and our std over seeds (ddof=1), floored at ``tolerance``):

- ``reproduced``: ``|diff| <= s`` (i.e. within max(1 std, tolerance));
- ``within noise``: ``s < |diff| <= 2 s``;
- ``differs``: ``|diff| > 2 s``;
- ``no data here``: no ``ok`` record maps to the row.

``diff_std`` is ``diff`` in units of the larger std (empty when neither side
has one, e.g. Kipf's GCN against a single seed).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from gkd_bench.report import leaderboard, load_runs

REFERENCE_COLUMNS = ["source", "table", "dataset", "setting", "teacher", "student", "method", "metric",
                     "value", "std", "n_seeds", "note"]
VERDICTS = ("reproduced", "within noise", "differs", "no data here")
DEFAULT_TOLERANCE = 1.0  # points

# --------------------------------------------------------------------------- mapping tables
# Reference dataset name -> our registry name (GLNN's names for the CPF / gnn-benchmark files).
DATASET_NAMES: Dict[str, str] = {
    "a-computer": "amazon-computers",
    "a-photo": "amazon-photo",
}

# Split protocol of each source, per dataset ("*" = default for the source).
PROTOCOLS: Dict[str, Dict[str, str]] = {
    "glnn": {"*": "cpf", "ogbn-arxiv": "ogb", "ogbn-products": "ogb"},
    "classic": {"*": "planetoid"},
    "gcrd": {"*": "ogb", "ppi": "ppi"},
    "platonov": {"*": "platonov"},
    "alignahead": {"*": "ppi"},
}

# Reference setting -> (our setting, leaderboard score column); setting None matches any.
# GLNN's README rows are all from its production (inductive) experiment: ``tran`` is the observed
# 80% of the test nodes, ``ind`` the held-out 20%, ``prod`` their node-weighted mix (our ``test``).
SETTINGS: Dict[str, Tuple[Optional[str], str]] = {
    "tran": ("inductive", "test_tran"),
    "ind": ("inductive", "test_ind"),
    "prod": ("inductive", "test"),
    "transductive": ("transductive", "test"),
    "multi-graph": (None, "test"),
}

# Paper model name -> our model label in suites.
MODEL_LABELS: Dict[str, str] = {
    "SAGE": "sage", "GraphSAGE": "sage", "MLP": "mlp", "GCN": "gcn", "GAT": "gat", "SIGN": "sign",
    "GAT-sep": "gat-sep", "ResNet": "resnet",
    "R-GCN-3L": "rgcn-3l", "R-GCN-2L": "rgcn-2l",
    "GAT-3L": "gat", "GAT-5L": "gat-5l", "GAT-2L": "gat-2l", "GAT-4L": "gat-4l",
}

TEACHER_ROW = "<teacher>"  # method "teacher": the teacher's own score
# Paper method name -> our distiller label.
METHOD_DISTILLERS: Dict[str, str] = {
    "SAGE": "none", "GraphSAGE": "none", "MLP": "none", "GCN": "none", "GAT": "none", "GAT-sep": "none",
    "ResNet": "none", "supervised": "none",
    "GLNN": "kd", "KD": "kd", "FitNet": "fitnet", "AT": "at", "LSP": "lsp", "GSP": "gsp", "G-CRD": "gcrd",
    "KD+FitNet": "kd+fitnet", "KD+AT": "kd+at", "KD+LSP": "kd+lsp", "KD+GSP": "kd+gsp", "KD+G-CRD": "kd+gcrd",
    "same-layer": "alignahead-same", "Alignahead": "alignahead",
    "teacher": TEACHER_ROW,
}


# --------------------------------------------------------------------------- reference files
def reference_dir(results_dir=None, reference=None) -> Path:
    """Folder of the reference CSVs.

    Order: ``reference`` if given; ``$GKD_BENCH_REFERENCE``; ``<results_dir>/reference`` if it holds
    CSV files; the ``results/reference`` folder of the source checkout.
    """
    if reference is not None:
        return Path(reference)
    if os.environ.get("GKD_BENCH_REFERENCE"):
        return Path(os.environ["GKD_BENCH_REFERENCE"])
    if results_dir is not None and any((Path(results_dir) / "reference").glob("*.csv")):
        return Path(results_dir) / "reference"
    return Path(__file__).resolve().parent.parent / "results" / "reference"


def available_sources(results_dir=None, reference=None) -> List[str]:
    """Names of the reference sources (CSV file stems), sorted."""
    folder = reference_dir(results_dir, reference)
    return sorted(p.stem for p in folder.glob("*.csv")) if folder.is_dir() else []


def load_reference(source: str, results_dir=None, reference=None) -> pd.DataFrame:
    """The reference rows of ``source`` with the schema checked.

    Returns:
        DataFrame with :data:`REFERENCE_COLUMNS`; ``value``/``std``/``n_seeds``
        numeric (NaN where not published); text columns with ``""`` for empty.

    Raises:
        ValueError: unknown source (the message lists the available ones), a
            file whose columns differ from :data:`REFERENCE_COLUMNS`, a
            non-numeric value, or a ``source`` column that disagrees with the
            file name.
    """
    folder = reference_dir(results_dir, reference)
    path = folder / f"{source}.csv"
    if not path.is_file():
        avail = ", ".join(available_sources(results_dir, reference)) or "none"
        raise ValueError(f"unknown reference source {source!r}; available in {folder}: {avail}")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(df.columns) != REFERENCE_COLUMNS:
        raise ValueError(f"{path}: columns must be exactly {REFERENCE_COLUMNS}, got {list(df.columns)}")
    for col in ("value", "std", "n_seeds"):
        num = pd.to_numeric(df[col].replace("", np.nan), errors="coerce")
        bad = df[col][num.isna() & (df[col] != "")]
        if len(bad):
            raise ValueError(f"{path}: column {col!r} has non-numeric value(s) {sorted(set(bad))[:5]}")
        df[col] = num
    if df["value"].isna().any():
        raise ValueError(f"{path}: every row needs a value (rows {list(df.index[df['value'].isna()] + 2)})")
    wrong = sorted(set(df["source"]) - {source})
    if wrong:
        raise ValueError(f"{path}: source column holds {wrong}, expected {source!r}")
    return df


# --------------------------------------------------------------------------- matching
def _target(source: str, ref: pd.Series) -> dict:
    """Our (dataset, split, setting, column, teacher, student, distiller) for one reference row."""
    if ref["setting"] not in SETTINGS:
        raise ValueError(f"reference {source}: unknown setting {ref['setting']!r}; known: {sorted(SETTINGS)}")
    setting, column = SETTINGS[ref["setting"]]
    protos = PROTOCOLS.get(source, {})
    return {
        "dataset": DATASET_NAMES.get(ref["dataset"], ref["dataset"]),
        "split": protos.get(ref["dataset"], protos.get("*")),
        "setting": setting, "column": column,
        # an unmapped paper teacher name matches nothing (never "no teacher")
        "teacher": MODEL_LABELS.get(ref["teacher"], f"<unmapped {ref['teacher']}>") if ref["teacher"] else None,
        "student": MODEL_LABELS.get(ref["student"]),
        "distiller": METHOD_DISTILLERS.get(ref["method"]),
    }


def _matches(lb: pd.DataFrame, t: dict) -> List[Tuple[pd.Series, str]]:
    """Leaderboard rows and the score column (mean) that answer target ``t``."""
    if lb.empty or t["student"] is None or t["distiller"] is None:
        return []
    base = (lb["dataset"] == t["dataset"]) & ((lb["split"] == t["split"]) if t["split"] else True)
    if t["setting"] is not None:
        base &= lb["setting"] == t["setting"]
    if t["distiller"] == TEACHER_ROW:
        # the teacher trained alone: a `none` run of that label, else the teacher column of distilled runs
        own = lb[base & (lb["student"] == t["student"]) & (lb["teacher"] == "-") & (lb["distiller"] == "none")]
        if len(own):
            return [(r, t["column"]) for _, r in own.iterrows()]
        col = "teacher_" + t["column"]
        rows = lb[base & (lb["teacher"] == t["student"])]
        if col + "_mean" not in lb or rows.empty:
            return []
        return [(rows.iloc[0], col)]
    teacher = t["teacher"] if t["teacher"] else "-"
    sel = lb[base & (lb["student"] == t["student"]) & (lb["teacher"] == teacher)
             & (lb["distiller"] == t["distiller"])]
    return [(r, t["column"]) for _, r in sel.iterrows()]


def _num(v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v


def verdict(diff: float, paper_std: float = math.nan, our_std: float = math.nan,
            tolerance: float = DEFAULT_TOLERANCE) -> str:
    """Classify ``diff = ours - paper`` (points) against ``s = max(paper_std, our_std, tolerance)``.

    Returns ``reproduced`` (|diff| <= s), ``within noise`` (<= 2 s), ``differs``, or
    ``no data here`` when ``diff`` is NaN. NaN stds are ignored.
    """
    if diff is None or not math.isfinite(diff):
        return "no data here"
    s = max([v for v in (paper_std, our_std) if v is not None and math.isfinite(v)] + [tolerance])
    if abs(diff) <= s:
        return "reproduced"
    if abs(diff) <= 2 * s:
        return "within noise"
    return "differs"


#: sources whose rows only the named suites reproduce: other suites' runs of the same labels on the same
#: datasets use other architectures or settings (the default suite's ogbn-arxiv GCN / SAGE, an
#: alignahead 4-layer PPI GAT), so by default they are not compared with these papers
SOURCE_SUITES = {"gcrd": ("gcrd",)}
#: reference tables quoted from another paper (no std, other code): shown beside ours without a verdict
INFO_ONLY = re.compile(r"LSP-paper column")
INFO_VERDICT = "for information"


def suite_leaderboards(results_dir, suites: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Leaderboard rows of every suite (or of ``suites``) with a ``suite`` column."""
    root = Path(results_dir) / "runs"
    names = list(suites) if suites else (sorted(p.name for p in root.iterdir() if p.is_dir())
                                         if root.is_dir() else [])
    parts = []
    for name in names:
        lb = leaderboard(load_runs(results_dir, [name]))
        if not lb.empty:
            parts.append(lb.assign(suite=name))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def compare_frame(results_dir, source: str, suites: Optional[Sequence[str]] = None,
                  tolerance: float = DEFAULT_TOLERANCE, reference=None,
                  lb: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Paper vs ours for every reference row of ``source``, one row per (reference row, matching config).

    Args:
        results_dir: folder holding ``runs/<suite>/`` records.
        source: reference source name (``results/reference/<source>.csv``).
        suites: only these suites' records (default: :data:`SOURCE_SUITES` of ``source``, else all).
        tolerance: floor of the verdict scale in points (see :func:`verdict`).
        reference: folder of the reference CSVs (default: :func:`reference_dir`).
        lb: leaderboard rows already built, with a ``suite`` column (as
            :func:`suite_leaderboards` returns); default: built from the records.

    Returns:
        DataFrame with the reference columns plus ``ours`` (mean over seeds, %),
        ``ours_std`` (ddof=1), ``ours_n``, ``suite``, ``column`` (our score column),
        ``diff`` (points, ours - paper), ``diff_std`` (diff / larger std) and
        ``verdict``. A row without matching records has ``verdict`` "no data here"; a row of a table quoted
        from another paper (:data:`INFO_ONLY`) with records has :data:`INFO_VERDICT`.

    Raises:
        ValueError: unknown source (lists the available ones) or a malformed reference file.
    """
    ref = load_reference(source, results_dir, reference)
    suites = list(suites) if suites else list(SOURCE_SUITES.get(source, ())) or None
    if lb is None:
        lb = suite_leaderboards(results_dir, suites)
    elif suites and not lb.empty:
        lb = lb[lb["suite"].isin(list(suites))]
    out = []
    for _, r in ref.iterrows():
        t = _target(source, r)
        hits = _matches(lb, t)
        base = r.to_dict()
        if not hits:
            out.append({**base, "ours": math.nan, "ours_std": math.nan, "ours_n": 0, "suite": "",
                        "column": t["column"], "diff": math.nan, "diff_std": math.nan,
                        "verdict": "no data here"})
            continue
        for row, col in hits:
            mean, sd, n = _num(row.get(f"{col}_mean")), _num(row.get(f"{col}_std")), int(row.get("n", 0) or 0)
            diff = mean - r["value"]
            stds = [v for v in (r["std"], sd) if math.isfinite(v)]
            big = max(stds) if stds else math.nan
            out.append({**base, "ours": mean, "ours_std": sd, "ours_n": n, "suite": row["suite"], "column": col,
                        "diff": diff, "diff_std": diff / big if big and math.isfinite(big) else math.nan,
                        "verdict": INFO_VERDICT if INFO_ONLY.search(str(r.get("table", "")))
                        else verdict(diff, r["std"], sd, tolerance)})
    return pd.DataFrame(out)


def _fmt(mean, std=math.nan, n=None) -> str:
    if mean is None or not math.isfinite(mean):
        return ""
    s = f"{mean:.2f}"
    if std is not None and math.isfinite(std):
        s += f" ± {std:.2f}"
    if n is not None and isinstance(n, (int, float)) and math.isfinite(n) and n > 0:
        s += f" ({int(n)})"
    return s


def compare_table(results_dir, source: str, suites: Optional[Sequence[str]] = None,
                  tolerance: float = DEFAULT_TOLERANCE, reference=None) -> str:
    """Markdown "paper vs ours" for ``source`` (see :func:`compare_frame`), with a verdict count.

    Raises:
        ValueError: unknown source (lists the available ones) or a malformed reference file.
    """
    df = compare_frame(results_dir, source, suites, tolerance, reference)
    parts = [f"## Paper vs ours: {source}\n"]
    for table, g in df.groupby("table", sort=False):
        parts.append(f"### {table}\n")
        t = pd.DataFrame({
            "dataset": g["dataset"], "setting": g["setting"], "teacher": g["teacher"], "student": g["student"],
            "method": g["method"], "metric": g["metric"],
            "paper": [_fmt(v, s, n) for v, s, n in zip(g["value"], g["std"], g["n_seeds"])],
            "ours": [_fmt(v, s, n) for v, s, n in zip(g["ours"], g["ours_std"], g["ours_n"])],
            "diff": ["" if not math.isfinite(d) else f"{d:+.2f}" for d in g["diff"]],
            "diff/std": ["" if not math.isfinite(d) else f"{d:+.1f}" for d in g["diff_std"]],
            "verdict": g["verdict"], "suite": g["suite"],
        })
        parts.append(t.to_markdown(index=False, disable_numparse=True))
        parts.append("")
    counts = df["verdict"].value_counts()
    shown = VERDICTS + ((INFO_VERDICT,) if INFO_VERDICT in counts else ())
    parts.append("Verdicts: " + ", ".join(f"{v} {int(counts.get(v, 0))}" for v in shown) + ".")
    parts.append(f"diff = ours - paper (points); diff/std in units of the larger std (paper's, or ours "
                 f"over seeds with ddof=1); reproduced: |diff| <= max(1 std, {tolerance:g}); within noise: "
                 f"<= 2 x that; ours = mean ± std (n seeds).")
    return "\n".join(parts) + "\n"
