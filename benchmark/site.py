"""Static leaderboard site from the records: ``gkd-bench report --format html`` (issue 10).

The site is plain HTML written with Jinja2 templates (``templates/``), one CSS
and one small vanilla-JavaScript file (``static/``); it needs no server and no
network (open ``index.html`` from disk). Layout of the output folder::

    index.html                                suites, their (dataset, split, setting) tables, paper vs ours
    <suite>/<dataset>_<split>_<setting>.html  leaderboard table: sortable, filterable; plots
    <suite>/configs/<config_id>.html          one config: resolved hyperparameters, per-seed records, environment
    <suite>/records/<run_id>.json             copies of the raw records (only for a site outside the results folder)
    <suite>/plots/*.png                       accuracy vs latency / vs perturbation level (gkd_bench.plots):
                                              copies or drawn (the report's PNGs are linked in place from inside)
    compare/<source>.html                     paper vs ours with verdicts (gkd_bench.compare)
    static/site.css, static/site.js

A site inside the results folder (the default ``results/site``) links the
records and the report's PNGs where they are, so publishing ``results/``
publishes the site without duplicating them. Pages carry no timestamp of
their own (the index shows the newest record's ``started_at``), so the same
records give the same files.

Columns are picked generically from what the leaderboard
(:func:`gkd_bench.report.leaderboard`) holds: score columns as mean ± std
over seeds (ddof=1), gains, robustness summaries, online and full-graph
latency, speedups, parameter counts (shown), and every other numeric column
(per-level robustness, p90 and model-only latency, memory, ...) behind a
"show all columns" switch.

Importing this module imports neither torch nor dgl (the registries of
:mod:`gkd_bench.registry` fill lazily), so a site is built in seconds on any
machine that holds the records.
"""
from __future__ import annotations

import functools
import inspect
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from gkd_bench.records import record_path
from gkd_bench.report import DEFINITIONS, GROUP, ONLINE_COL, SEARCH_DEFINITIONS, _selected_text, leaderboard, load_runs
from gkd_bench.search import search_table

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_FILES = ("site.css", "site.js")

SCORE_BASES = ["test", "test_tran", "test_ind", "val", "teacher_test", "teacher_test_tran", "teacher_test_ind"]
HEADLINE_SCORES = {"test", "test_tran", "test_ind", "teacher_test"}
ENV_KEYS = ["gkd_bench_version", "git_sha", "torch_version", "dgl_version", "python_version", "device", "hw_id",
            "cpu_model", "cpu_cores", "threads", "latency_threads"]
SEED_COLS = ["test", "test_tran", "test_ind", "val", "teacher_test", "best_epoch", "epochs_run", "train_s"]
ROBUST_SUMMARIES = ["feat", "drop", "add", "train_noise", "poison_drop", "poison_add"]
# leaderboard columns that are bookkeeping, not something to sort a table by
SKIP_COLS = {"n", "perturbation_level", "robust_rel_clean", "gain_vs_none_std", "gain_vs_kd_std", "seed",
             "split_index", "gain_within_std", "gain_vs_kd_within_std", "structure_invariant"}
VERDICT_CLASS = {"reproduced": "ok", "within noise": "warn", "differs": "bad", "no data here": "none"}
_LAT = re.compile(r"(teacher_)?latency_(full|online(\d+))(_model)?(_p90)?_ms(@.+)?")
_SPEED = re.compile(r"speedup_(full|online(\d+))(_model)?(@.+)?")


def _safe(s) -> str:
    """File-name-safe text (the same rule as :mod:`gkd_bench.plots`)."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", str(s)).strip("-") or "x"


def _isnum(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def _flag(v) -> bool:
    """True for a set boolean flag (Python or numpy bool); False for False, None and NaN."""
    return not _blank(v) and bool(v)


def _records(df: pd.DataFrame, drop_blank: bool = False) -> List[dict]:
    """Rows as dicts (``DataFrame.to_dict("records")`` is slow on wide frames); optionally without blanks."""
    cols = list(df.columns)
    rows = (dict(zip(cols, vals)) for vals in df.to_numpy(dtype=object))
    if drop_blank:
        return [{k: v for k, v in r.items() if not _blank(v)} for r in rows]
    return list(rows)


# --------------------------------------------------------------------------- columns
@dataclass
class Column:
    """One table column: ``cell(row)`` gives ``(text, sort value)``; ``numeric`` picks the sort order."""

    key: str
    label: str
    numeric: bool
    headline: bool
    title: str
    cell: Callable[[pd.Series], Tuple[str, object]]
    filter: bool = False


def _text(key: str) -> Callable:
    def f(r):
        v = r.get(key)
        v = "-" if _blank(v) else str(v)
        return v, v
    return f


def _score(base: str) -> Callable:
    def f(r):
        m, s = r.get(f"{base}_mean"), r.get(f"{base}_std")
        if not _isnum(m):
            return "", None
        return (f"{m:.2f} ± {s:.2f}" if _isnum(s) else f"{m:.2f}"), float(m)
    return f


def _fmt(kind: str, key: str, flag_col: Optional[str] = None) -> Callable:
    def f(r):
        v = r.get(key)
        if not _isnum(v):
            return "", None
        if kind == "params":
            t = f"{int(round(v)):,}"
        elif kind == "speedup":
            t = f"{v:.1f}×"
        elif kind == "gain":
            t = f"{v:+.2f}" + (" ~" if flag_col and _flag(r.get(flag_col)) else "")
        elif kind == "ratio":
            t = f"{v:.3f}" + (" †" if flag_col and _flag(r.get(flag_col)) else "")
        elif kind == "ms":
            t = f"{v:.3f}"
        else:
            t = f"{v:.4g}"
        return t, float(v)
    return f


@functools.lru_cache(maxsize=None)
def _definition(key: str) -> str:
    """The report's definition of a column (matching ``DEFINITIONS`` keys such as ``"a / b"``)."""
    base = key.split("@", 1)[0]
    for k, text in DEFINITIONS.items():
        names = [p.strip() for p in k.replace("/", " ").split()]
        if base in names or k == base:
            return text
    if base.endswith("_mean") and base[:-5] in DEFINITIONS:
        return DEFINITIONS[base[:-5]]
    return ""


def main_online_batch(columns: Sequence[str]) -> Optional[int]:
    """The online batch size shown by default: 10 when measured, else the smallest one present."""
    batches = sorted({int(m.group(3)) for c in columns if (m := _LAT.fullmatch(c)) and m.group(3)})
    if not batches:
        return None
    return 10 if 10 in batches else batches[0]


def table_columns(g: pd.DataFrame) -> List[Column]:
    """The columns of one leaderboard table, picked from what ``g`` (leaderboard rows) holds.

    Order: teacher, student, distiller (filterable); scores (mean ± std);
    seeds; gains; robustness summaries; online latency and speedup (batch
    :func:`main_online_batch`); full-graph latency and speedup; parameters;
    representation analysis; then every other numeric column (``headline``
    False: hidden until "show all columns"). Columns empty in ``g`` are left out.
    """
    present = list(g.columns[g.notna().any().to_numpy()])
    has = set(present)
    cols: List[Column] = [Column(k, k, False, True, "", _text(k), filter=True)
                          for k in ("teacher", "student", "distiller")]
    used = set(GROUP) | {"metric", "distiller_name", "hw_id", "config_id", "hparams", "clean_key",
                         "perturbation_kind", "dataset", "split", "setting", "search_group", "search_selected",
                         "search_candidates", "search_size", "search_provisional", "search_pending"}
    if "search_selected" in has:  # hyperparameter search: which grid point this row is, out of how many
        cols.append(Column("search_selected", "selected", False, True, SEARCH_DEFINITIONS["selected"],
                           lambda r: (_selected_text(r),) * 2))
        cols.append(Column("search_candidates", "candidates", True, True, SEARCH_DEFINITIONS["candidates"],
                           lambda r: (f"{int(r['search_candidates'])}/{int(r['search_size'])}",
                                      int(r["search_candidates"])) if _isnum(r.get("search_size")) else ("", None)))
    online = sorted({c[:-5] for c in present if c.endswith("_mean") and ONLINE_COL.fullmatch(c[:-5])})
    for base in SCORE_BASES + online:
        if f"{base}_mean" in has:
            head = base in HEADLINE_SCORES or (base in online and base.startswith("test"))
            cols.append(Column(base, base, True, head, _definition(base) or "mean ± std over seeds (ddof=1)",
                               _score(base)))
            used |= {f"{base}_mean", f"{base}_std"}
    if "n" in has:
        cols.append(Column("n", "seeds", True, True, "number of seeds (runs with status ok)",
                           lambda r: (str(int(r["n"])), int(r["n"])) if _isnum(r.get("n")) else ("", None)))
    for key, flag in (("gain_vs_none", "gain_within_std"), ("gain_vs_kd", "gain_vs_kd_within_std")):
        if key in has:
            cols.append(Column(key, key, True, True, _definition(key), _fmt("gain", key, flag)))
            used.add(key)
    for kind in ROBUST_SUMMARIES:
        key = f"robust_summary_{kind}"
        if key in has:
            flag = "structure_invariant" if kind in ("drop", "add") else None
            title = _definition(key) or DEFINITIONS.get("robust_summary_train_noise / _poison_drop / _poison_add", "")
            cols.append(Column(key, key, True, True, title, _fmt("ratio", key, flag)))
            used.add(key)
    b = main_online_batch(present)
    lat = sorted(c for c in present if _LAT.fullmatch(c) or _SPEED.fullmatch(c))

    def _head(c: str) -> bool:
        m = _LAT.fullmatch(c)
        if m:
            scen = m.group(2)
            return not m.group(1) and not m.group(4) and not m.group(5) and scen in ("full", f"online{b}")
        m = _SPEED.fullmatch(c)
        return bool(m) and not m.group(3) and m.group(1) in ("full", f"online{b}")

    def _rank(c: str):
        online_first = 0 if f"online{b}" in c else 1
        return (not _head(c), online_first, "speedup" in c, c)

    for c in sorted(lat, key=_rank):
        kind = "speedup" if c.startswith("speedup") else "ms"
        cols.append(Column(c, c, True, _head(c), _definition(c), _fmt(kind, c)))
        used.add(c)
    for c in ("student_params", "teacher_params"):
        if c in has:
            cols.append(Column(c, c, True, True, DEFINITIONS.get("params", ""), _fmt("params", c)))
            used.add(c)
    for c in ("cka", "global_corr", "local_corr"):
        if c in has:
            cols.append(Column(c, c, True, True, _definition(c), _fmt("num", c)))
            used.add(c)
    for c in present:  # whatever else exists: hidden until "show all columns"
        if c in used or c in SKIP_COLS or c.endswith("_std") or not pd.api.types.is_numeric_dtype(g[c]):
            continue
        if pd.api.types.is_bool_dtype(g[c]):
            continue
        kind = "ms" if c.endswith("_ms") or "_ms@" in c else "params" if c.endswith("_params") else "num"
        cols.append(Column(c, c, True, False, _definition(c), _fmt(kind, c)))
    return cols


# --------------------------------------------------------------------------- site model
def _label(r) -> str:
    t = r.get("teacher")
    if _blank(t) or t == "-":
        return f"{r['student']} ({r['distiller']})"
    return f"{t} → {r['student']} {r['distiller']}"


def _nested(v):
    """Parse JSON strings (hparams fields) so templates can render nested key/value tables."""
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _env(recs: List[dict]) -> List[Tuple[str, str]]:
    """Environment stamp of a config's records: one value per key, or the distinct values (started_at: range)."""
    out = []
    for k in ENV_KEYS + ["started_at"]:
        if any(k in r for r in recs):
            uniq = sorted({str(r[k]) for r in recs if not _blank(r.get(k))})
            if uniq:
                out.append((k, uniq[0] if len(uniq) == 1 else f"{uniq[0]} … {uniq[-1]}" if k == "started_at"
                            else ", ".join(uniq)))
    return out


def _value_text(v) -> str:
    if _blank(v):
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.6g}"
    return str(v)


def _existing_plots(report_dir: Path, stem: str) -> List[Path]:
    """The PNGs ``gkd-bench report`` wrote beside LEADERBOARD.md for one table (:mod:`gkd_bench.plots` names)."""
    found = []
    for pat in (f"accuracy_vs_latency_{stem}.png", f"accuracy_vs_latency_{stem}_*.png",
                f"accuracy_vs_noise_{stem}.png"):
        found += sorted(report_dir.glob(pat))
    return found


def _plots_for(group_all: pd.DataFrame, report_dir: Path, stem: str, sdir: Path, mode: str,
               inside: bool) -> List[dict]:
    """Plots of one table as ``{"name", "href"}`` (href relative to the table page in ``sdir``).

    ``auto``/``copy``: the PNGs in the suite's report folder, linked where the
    site lies inside the results folder, else copied to ``<suite>/plots/``;
    ``auto``/``generate``: drawn into ``<suite>/plots/`` when there are none.
    """
    if mode == "none":
        return []
    found = _existing_plots(report_dir, stem) if mode in ("auto", "copy") else []
    dest = sdir / "plots"
    out = []
    for p in found:
        if inside:
            href = Path(os.path.relpath(p.resolve(), sdir.resolve())).as_posix()
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest / p.name)
            href = f"plots/{p.name}"
        out.append({"name": p.name, "href": href})
    if not out and mode in ("auto", "generate"):
        from gkd_bench.plots import write_plots

        dest.mkdir(parents=True, exist_ok=True)
        out = [{"name": Path(p).name, "href": f"plots/{Path(p).name}"} for p in write_plots(group_all, dest)]
    return out


def _env_jinja():
    import jinja2
    import markupsafe

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["nested"] = _nested
    env.filters["vtext"] = _value_text
    env.filters["verdict_class"] = lambda v: VERDICT_CLASS.get(str(v), "none")
    # long snake_case headers may wrap after "_" (the text itself is unchanged)
    env.filters["breakable"] = lambda v: markupsafe.Markup("_<wbr>").join(
        markupsafe.escape(p) for p in str(v).split("_"))
    return env


def _inside(out: Path, results_dir: Path) -> bool:
    """Whether the site folder lies inside the results folder (then pages link records and plots in place)."""
    return out.resolve().is_relative_to(results_dir.resolve())


def _record_links(results_dir: Path, suite: str, run_ids, out: Path, sdir: Path) -> Callable[[str], str]:
    """Where a config page links a record: the record itself when the site lies inside ``results_dir``
    (e.g. ``results/site``, published together), else a copy in ``<suite>/records/``."""
    runs_dir = record_path(results_dir, suite, "x").parent
    if _inside(out, results_dir):
        rel = Path(os.path.relpath(runs_dir.resolve(), (sdir / "configs").resolve())).as_posix()
        return lambda rid: f"{rel}/{rid}.json"
    (sdir / "records").mkdir(exist_ok=True)
    for rid in run_ids:
        src = record_path(results_dir, suite, rid)
        if src.is_file():
            shutil.copyfile(src, sdir / "records" / f"{rid}.json")
    return lambda rid: f"../records/{rid}.json"


def _pm(mean, std=math.nan, n=None) -> str:
    """``mean ± std (n)`` with two decimals; parts that are missing are left out."""
    if not _isnum(mean):
        return ""
    return f"{mean:.2f}" + (f" ± {std:.2f}" if _isnum(std) else "") + (f" ({int(n)})" if _isnum(n) and n > 0 else "")


def _compare_frame(compare, results_dir: Path, source: str, suites: Sequence[str], lb: pd.DataFrame):
    """:func:`gkd_bench.compare.compare_frame`, reusing the leaderboards already built for the pages.

    ``compare_frame`` rebuilds every suite's leaderboard per source (seconds on
    a full results folder); ``lb`` is the same frame (clean configs of every
    suite with a ``suite`` column, as ``compare.suite_leaderboards`` returns).
    Passed as ``lb=`` when ``compare_frame`` accepts it, else substituted for
    ``suite_leaderboards`` during the call. Only the identity, score
    (``*_mean``/``*_std``) and ``n`` columns are passed: what matching reads
    (``tests/test_site.py`` checks the verdicts against a plain ``compare_frame``).
    """
    # matching reads identity, score and seed-count columns only; a narrow frame makes its row masks cheap
    keep = [c for c in lb.columns if c in GROUP or c in ("suite", "n", "metric") or c.endswith(("_mean", "_std"))]
    lb = lb[keep]
    if "lb" in inspect.signature(compare.compare_frame).parameters:
        return compare.compare_frame(results_dir, source, suites=list(suites), lb=lb)
    original = compare.suite_leaderboards
    compare.suite_leaderboards = lambda *a, **k: lb
    try:
        return compare.compare_frame(results_dir, source, suites=list(suites))
    finally:
        compare.suite_leaderboards = original


def _compare_pages(results_dir: Path, suites: Sequence[str], pages_by_key: Dict[tuple, str],
                   lb: pd.DataFrame) -> List[dict]:
    """Paper-vs-ours sources with at least one matched row (``gkd_bench.compare``; [] if it is absent)."""
    try:
        from gkd_bench import compare
    except ImportError:  # pragma: no cover - compare.py is optional for the site
        return []
    out = []
    for source in compare.available_sources(results_dir):
        df = _compare_frame(compare, results_dir, source, suites, lb)
        if df.empty or not (df["verdict"] != "no data here").any():
            continue
        tables = []
        for table, g in df.groupby("table", sort=False):
            rows = []
            for _, r in g.iterrows():
                link = None
                if r.get("suite"):
                    cands = [v for (s, d, _sp, st), v in pages_by_key.items()
                             if s == r["suite"] and d == compare.DATASET_NAMES.get(r["dataset"], r["dataset"])
                             and (compare.SETTINGS.get(r["setting"], (None,))[0] in (None, st))]
                    link = cands[0] if len(cands) == 1 else None
                rows.append({
                    "dataset": r["dataset"], "setting": r["setting"], "teacher": r["teacher"],
                    "student": r["student"], "method": r["method"], "metric": r["metric"],
                    "paper": _pm(r["value"], r["std"], r["n_seeds"]),
                    "ours": _pm(r["ours"], r["ours_std"], r["ours_n"]),
                    "diff": "" if not math.isfinite(r["diff"]) else f"{r['diff']:+.2f}",
                    "diff_std": "" if not math.isfinite(r["diff_std"]) else f"{r['diff_std']:+.1f}",
                    "diff_v": r["diff"] if math.isfinite(r["diff"]) else None,
                    "paper_v": r["value"], "ours_v": r["ours"] if math.isfinite(r["ours"]) else None,
                    "verdict": r["verdict"], "suite": r["suite"], "link": link, "note": r.get("note", ""),
                })
            tables.append({"name": table, "rows": rows})
        counts = df["verdict"].value_counts()
        out.append({"source": source, "file": f"compare/{_safe(source)}.html", "tables": tables,
                    "counts": [(v, int(counts.get(v, 0))) for v in compare.VERDICTS],
                    "tolerance": compare.DEFAULT_TOLERANCE})
    return out


def build_site(results_dir, out_dir=None, suites: Optional[Sequence[str]] = None, plots: str = "auto",
               compare: bool = True) -> Path:
    """Write the static site for the records under ``results_dir/runs/<suite>/``.

    Args:
        results_dir: folder holding ``runs/<suite>/*.json`` (and, optionally,
            each suite's report folder ``<suite>/`` with plots and
            ``reference/*.csv``).
        out_dir: destination folder (default ``results_dir/site``); pages
            already there are overwritten, other files are left alone.
        suites: only these suites (default: every suite with records).
        plots: ``auto`` uses the PNGs that ``gkd-bench report`` wrote beside
            ``LEADERBOARD.md`` (linked when the site lies inside
            ``results_dir``, else copied) and draws them (matplotlib) for
            tables that have none; ``copy`` only uses existing ones;
            ``generate`` always draws; ``none`` skips plots.
        compare: add the paper-vs-ours pages (sources with matching records).

    Returns:
        the path of ``index.html``.

    Raises:
        FileNotFoundError: no records (for ``suites``) under ``results_dir/runs``.
        ValueError: ``plots`` is not one of the four modes; a malformed
            reference file (from :mod:`gkd_bench.compare`).
    """
    if plots not in ("auto", "copy", "generate", "none"):
        raise ValueError(f"plots must be auto, copy, generate or none, got {plots!r}")
    results_dir = Path(results_dir)
    root = results_dir / "runs"
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if suites:
        missing = sorted(set(suites) - set(names))
        if missing:
            raise FileNotFoundError(f"no records for suite(s) {missing} under {root}; "
                                    f"suites with records: {', '.join(names) or 'none'}")
        names = [n for n in names if n in set(suites)]
    if not names:
        raise FileNotFoundError(f"no records under {root}; run `gkd-bench run` first")
    out = Path(out_dir) if out_dir else results_dir / "site"
    out.mkdir(parents=True, exist_ok=True)
    (out / "static").mkdir(exist_ok=True)
    for f in STATIC_FILES:
        shutil.copyfile(STATIC / f, out / "static" / f)
    env = _env_jinja()
    inside = _inside(out, results_dir)
    suite_models: List[dict] = []
    pages_by_key: Dict[tuple, str] = {}
    clean_lbs: List[pd.DataFrame] = []
    n_records = 0
    newest = ""
    for suite in names:
        runs = load_runs(results_dir, [suite])
        if runs.empty:
            continue
        n_records += len(runs)
        if "started_at" in runs and runs["started_at"].notna().any():
            newest = max(newest, str(runs["started_at"].dropna().max()))
        sdir = out / suite
        (sdir / "configs").mkdir(parents=True, exist_ok=True)
        written = set()  # config pages written for this suite
        record_href = _record_links(results_dir, suite, runs["run_id"].dropna(), out, sdir)
        grid = search_table(runs)
        lb_all = leaderboard(runs, include_perturbed=True, search_table=grid)
        lb = lb_all
        if not lb_all.empty and "perturbation_kind" in lb_all:
            lb = lb_all[lb_all["perturbation_kind"].isna()].reset_index(drop=True)
        if not lb.empty:
            clean_lbs.append(lb.assign(suite=suite))
        tables = []
        by_cid: Dict[str, List[dict]] = {}
        for rec in _records(runs, drop_blank=True):
            by_cid.setdefault(rec.get("config_id"), []).append(rec)
        if not lb.empty:
            for (ds, split, setting), g in lb.groupby(["dataset", "split", "setting"], sort=True):
                stem = f"{_safe(ds)}_{_safe(split)}_{_safe(setting)}"
                fname = f"{stem}.html"
                g = g.sort_values("test_mean", ascending=False, na_position="last") if "test_mean" in g else g
                g_all = lb_all[(lb_all["dataset"] == ds) & (lb_all["split"] == split)
                               & (lb_all["setting"] == setting)]
                cols = table_columns(g)
                pert = g_all[g_all["perturbation_kind"].notna()] if "perturbation_kind" in g_all else g_all.iloc[:0]
                rows = []
                for r in _records(g):
                    cells = [dict(zip(("text", "v"), c.cell(r))) for c in cols]
                    rows.append({"cells": cells, "config_id": r["config_id"], "label": _label(r)})
                recs = [rec for cid in g_all["config_id"] for rec in by_cid.get(cid, [])]
                hw = {}
                for rec in recs:
                    if not _blank(rec.get("hw_id")) and rec["hw_id"] not in hw:
                        hw[rec["hw_id"]] = {k: _value_text(rec.get(k)) for k in ENV_KEYS}
                table = {
                    "dataset": ds, "split": split, "setting": setting, "metric": g["metric"].iloc[0],
                    "file": fname, "columns": cols, "rows": rows,
                    "filters": [(c.key, sorted({row["cells"][i]["text"] for row in rows}))
                                for i, c in enumerate(cols) if c.filter],
                    "plots": _plots_for(g_all, results_dir / suite, stem, sdir, plots, inside),
                    "curves": _train_curves(g, pert), "hardware": list(hw.values()),
                    "n_records": len(recs), "best": rows[0]["label"] if rows else "",
                    "search": _search_rows(grid, ds, split, setting, set(g_all["config_id"])),
                    "best_score": next((rows[0]["cells"][i]["text"] for i, c in enumerate(cols)
                                        if c.key == "test"), "") if rows else "",
                }
                tables.append(table)
                pages_by_key[(suite, ds, split, setting)] = f"{suite}/{fname}"
                all_rows = _records(g_all, drop_blank=True)
                for r in all_rows:
                    _write_config(env, sdir, suite, table, r, by_cid.get(r["config_id"], []), all_rows,
                                  record_href)
                    written.add(f"{r['config_id']}.html")
        # pages of configs whose records are gone (a replaced configuration's records removed) go too
        for old in (sdir / "configs").glob("*.html"):
            if old.name not in written:
                old.unlink()
        problems = []
        if "status" in runs:
            bad = runs[runs["status"] != "ok"]
            for (ds, status), gb in bad.groupby(["dataset", "status"]):
                err = gb["error"].dropna() if "error" in gb else pd.Series(dtype=object)
                problems.append({"dataset": ds, "status": status, "runs": len(gb),
                                 "reason": str(err.iloc[0]).splitlines()[0] if len(err) else ""})
        model = {"name": suite, "tables": tables, "problems": problems, "n_records": len(runs),
                 "n_ok": int((runs["status"] == "ok").sum()) if "status" in runs else 0}
        suite_models.append(model)
        for t in tables:
            _render(env, "table.html", sdir / t["file"], root="../", suite=model, table=t,
                    definitions={**DEFINITIONS, **(SEARCH_DEFINITIONS if t["search"] else {})}, title=f"{t['dataset']} · {t['split']} · {t['setting']} — {suite}")
    comparisons = _compare_pages(results_dir, names, pages_by_key,
                                 pd.concat(clean_lbs, ignore_index=True) if clean_lbs else pd.DataFrame()) \
        if compare else []
    for c in comparisons:
        _render(env, "compare.html", out / c["file"], root="../", cmp=c, title=f"Paper vs ours: {c['source']}")
    index = out / "index.html"
    _render(env, "index.html", index, root="", suites=suite_models, comparisons=comparisons,
            n_records=n_records, newest=newest, title="gkd-bench leaderboards")
    return index


def _search_rows(grid: pd.DataFrame, ds, split, setting, pages=frozenset()) -> List[dict]:
    """The grid points of one table's search groups (:func:`gkd_bench.search.search_table`) as template rows;
    ``config_id`` (a link) only for points with a config page (``pages``: the selected ones)."""
    if grid.empty:
        return []
    g = grid[(grid["dataset"] == ds) & (grid["split"] == split) & (grid["setting"] == setting)]
    out = []
    for r in _records(g):
        out.append({"teacher": "-" if _blank(r.get("teacher")) else r["teacher"], "student": r["student"],
                    "group": r["search_group"], "label": r["search_label"],
                    "config_id": r.get("config_id") if r.get("config_id") in pages else None,
                    "val": _score("val")(r)[0], "test": _score("test")(r)[0],
                    "seeds": f"{int(r['n'])}/{int(r['n_expected'])}",
                    "selected": ("selected" + (" (provisional)" if _flag(r.get("provisional")) else ""))
                    if _flag(r.get("selected")) else ""})
    return out


def _train_curves(g: pd.DataFrame, pert: pd.DataFrame) -> Optional[dict]:
    """Train-time perturbation curve table (mean test per kind and level) for a table's clean rows."""
    if pert.empty:
        return None
    keys = sorted({(k, float(lv)) for k, lv in zip(pert["perturbation_kind"], pert["perturbation_level"])})
    head = [f"{k} {lv:g}" for k, lv in keys]
    rows = []
    for _, r in g.iterrows():
        mine = pert[pert["clean_key"] == r["clean_key"]]
        if mine.empty:
            continue
        vals = {(k, float(lv)): m for k, lv, m in zip(mine["perturbation_kind"], mine["perturbation_level"],
                                                      mine["test_mean"])}
        rows.append({"label": _label(r), "clean": f"{r['test_mean']:.2f}",
                     "values": ["" if not _isnum(vals.get(k)) else f"{vals[k]:.2f}" for k in keys],
                     "perturbed": [mine[(mine["perturbation_kind"] == k) & (mine["perturbation_level"] == lv)]
                                   ["config_id"].iloc[0] if (k, lv) in vals else None for k, lv in keys]})
    return {"head": head, "rows": rows} if rows else None


SPEC_DROP = ("seed", "suite")


def _write_config(env, sdir: Path, suite: str, table: dict, row: dict, recs: List[dict],
                  table_rows: List[dict], record_href: Callable[[str], str]) -> None:
    """One config page: ``row`` = its leaderboard row, ``recs`` = its records (dicts without blanks),
    ``table_rows`` = every leaderboard row of its table (train-time perturbed variants included),
    ``record_href(run_id)`` = the link to a raw record."""
    recs = sorted(recs, key=lambda r: (r.get("seed", -1), str(r.get("run_id"))))
    spec = next((json.loads(r["spec"]) for r in recs if isinstance(r.get("spec"), str)), None)
    if spec is not None:
        spec = {k: v for k, v in spec.items() if k not in SPEC_DROP}
    keys: List[str] = []
    seen = set()
    for r in recs:
        for k in r:
            if k not in seen and k != "spec":
                seen.add(k)
                keys.append(k)
    seed_cols = [c for c in SEED_COLS if c in seen]
    b = main_online_batch(keys)
    if b is not None and f"latency_online{b}_ms" in seen:
        seed_cols.append(f"latency_online{b}_ms")
    seeds = [{"seed": r.get("seed"), "run_id": r.get("run_id"), "status": r.get("status"),
              "href": record_href(str(r.get("run_id"))),
              "error": str(r.get("error", "")), "values": [_value_text(r.get(c)) for c in seed_cols]} for r in recs]
    fields = [(k, [_value_text(r.get(k)) for r in recs]) for k in keys]
    summary = [(k, _value_text(v), _definition(k)) for k, v in row.items()
               if k != "hparams" and not isinstance(v, (dict, list))]
    variants = []
    if row.get("clean_key") is not None:
        for v in table_rows:
            if v.get("clean_key") == row["clean_key"] and v["config_id"] != row["config_id"]:
                kind = v.get("perturbation_kind")
                variants.append({"config_id": v["config_id"],
                                 "what": "clean" if _blank(kind) else f"{kind} {float(v['perturbation_level']):g}",
                                 "test": "" if not _isnum(v.get("test_mean")) else f"{v['test_mean']:.2f}"})
    teacher_hp = next((r["teacher_hparams"] for r in recs if r.get("teacher_hparams")), None)
    _render(env, "config.html", sdir / "configs" / f"{row['config_id']}.html", root="../../", suite=suite,
            table=table, row=row, label=_label(row), spec=spec, hparams=_nested(row.get("hparams")),
            teacher_hparams=_nested(teacher_hp), seed_cols=seed_cols, seeds=seeds, fields=fields,
            environment=_env(recs), summary=summary, variants=variants,
            title=f"{_label(row)} — {row['dataset']} · {row['setting']} — {suite}")


def _render(env, template: str, path: Path, **ctx) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(env.get_template(template).render(**ctx), encoding="utf-8")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gkd_bench.site RESULTS_DIR [--out DIR] [--suite S ...] [--plots MODE]`` (torch-free)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m gkd_bench.site", description=__doc__.splitlines()[0])
    p.add_argument("results_dir")
    p.add_argument("--out", default=None)
    p.add_argument("--suite", action="append", default=None)
    p.add_argument("--plots", default="auto", choices=["auto", "copy", "generate", "none"])
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        index = build_site(a.results_dir, a.out, a.suite, plots=a.plots)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {index} in {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
