"""Leaderboards from records (DESIGN.md "Records, leaderboards, reports").

Records are the only source: ``runs.csv`` (one row per run), ``leaderboard.csv``
(one row per config: mean, sample std (ddof=1), n per metric column) and
``LEADERBOARD.md``. ``gain_vs_none`` pairs each config's seeds with the same
student (model and hyperparameters) trained by ``none`` on the same data;
``gain_within_std`` flags a mean gain no larger than the std of the paired
differences. Latency columns never mix hardware: with several ``hw_id`` in one
table, latency is reported per hardware id.

Hyperparameter searches (:mod:`gkd_bench.search`): of each search group only
the point selected on validation is a leaderboard row (``search_selected``,
``search_candidates``, ``search_size``, ``search_provisional``, ``search_pending``), and gains are
paired against the selected ``none`` / ``kd`` rows; ``search.csv`` and the
"Hyperparameter search" section of ``LEADERBOARD.md`` list every grid point.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from gkd_bench.records import iter_records
from gkd_bench import search as _search
from gkd_bench.robustness import add_train_time_summaries, relative_to_clean, train_time_table

GROUP = ["dataset", "split", "setting", "teacher", "student", "distiller"]
# online distillers (alignahead): per-student, worst/best-val student and ensemble scores
ONLINE_COL = re.compile(r"(val|test)_(s\d+|ensemble|best_student|min_student|max_student)")
METRIC_COLS = ["test", "val", "test_tran", "test_ind", "teacher_test", "teacher_test_ind", "teacher_test_tran"]
MEAN_COLS = ["student_params", "teacher_params", "latency_full_ms", "teacher_latency_full_ms", "speedup_full",
             "train_s", "best_epoch", "cka", "global_corr", "local_corr"]
ANALYSIS_COLS = ["cka", "global_corr", "local_corr"]  # G-CRD representation analysis (gkd_bench.analysis)
DEFINITIONS = {
    "test": "test score in % (accuracy, micro-F1 or ROC-AUC per the metric column); inductive: test_prod",
    "test_tran / test_ind": "inductive setting: observed test nodes / held-out test nodes (full graph at test time)",
    "± std (n)": "sample standard deviation (ddof=1) over n seeds",
    "teacher_test": "the teacher's test score, mean over the same seeds",
    "gain_vs_none": "mean over seeds of (this config - same student trained by `none`), paired by seed; "
                    "'~' marks a gain within one std of the paired differences",
    "gain_vs_kd": "the same against the same teacher and student trained by `kd` (paired by seed): for a kd+x "
                  "row, the kd run with the same KD settings (lam, T, kl_reduction, kd_nodes) when the suite ran "
                  "one (so the gain is the x term's), else the kd row shown (its selected point when searched)",
    "cka": "linear CKA between the teacher's and the student's last hidden representations (rows L2-normalised) "
           "on the validation nodes, eval mode (G-CRD analysis; 1 = same up to rotation and scale)",
    "global_corr / local_corr": "Pearson correlation between teacher and student pairwise cosine distances over "
                                "all pairs of validation nodes (at most 4000 sampled) / over the edges among "
                                "validation nodes (G-CRD analysis)",
    "latency_full_ms": "median full-graph forward pass (all nodes), eval mode, torch.utils.benchmark, this hardware; "
                       "median over seeds. Runs timed in different processes on the same workload (hardware, "
                       "threads, versions, data, split, seed, teacher and student specs and sizes, latency "
                       "settings, batching) all take the least disturbed measurement of it, the one with the "
                       "smallest sum of log median latencies (other load on the machine only slows a "
                       "measurement down); every latency, speedup and memory column comes from that one "
                       "measurement",
    "speedup_full": "teacher latency / student latency, measured in the same process on the same input",
    "params": "number of scalar parameters",
    "robust_summary_feat": "test-time Gaussian feature noise X' = (1-a)X + a*N(0,1) on the model trained clean: "
                           "mean over the levels a of perturbed / clean test score (1 = unaffected); "
                           "per-level scores robust_feat_<a> (in %) are in leaderboard.csv and runs.csv",
    "robust_summary_drop / robust_summary_add": "the same for randomly dropping / adding round(p*E) undirected "
                                                "edges at test time (evasion), E = undirected edges; "
                                                "per-level robust_drop_<p> / robust_add_<p>",
    "†": "graph-free student: structure-invariant by construction, its value is reported (= clean) and flagged",
    "robust_summary_train_noise / _poison_drop / _poison_add": "teacher and student trained (and evaluated) on "
                                                               "noisy features / with edges dropped / added "
                                                               "before training: mean over levels of test / "
                                                               "clean test, paired by seed",
    "perturbation seeds": "drawn from (dataset, split, kind, level, seed), separate from the model seed: every "
                          "method sees the same perturbed data at a given seed and level",
    "latency_online10_ms": "online@10: median end-to-end latency to predict 10 random test nodes from the full "
                           "graph and features (GNN: k-hop in-neighbourhood extraction + forward, k = layers, + 1 for GCN, whose "
                           "symmetric normalisation needs the full degrees of its outermost sources, so a GCN can be "
                           "slower online than a GAT of as many layers; MLP: gathering "
                           "10 feature rows + forward), torch.utils.benchmark, this hardware; model-only times, "
                           "p90, online@1 / @1024 and peak memory (mem_*_mb) are in the CSV files",
    "teacher_latency_online10_ms / speedup_online10": "the teacher's online@10 latency (full neighbourhood) and "
                                                      "teacher / student online@10 latency, measured back to back "
                                                      "in the same process on the same nodes",
}
SEARCH_DEFINITIONS = {
    "selected": "hyperparameter search: the grid point shown for this method, the one with the highest mean "
                "validation score over its finished seeds (ties: more finished seeds, then the earlier grid "
                "point); test scores play no part. '*': provisional, some grid point still lacks a seed; '+': "
                "selected, but the point still lacks some of its seeds (stage 2 of a two-stage search to run)",
    "candidates": "grid points with at least one finished seed / grid points; every point is listed under "
                  "'Hyperparameter search' and in search.csv",
}
EXTRA_PREFIXES = ("latency_", "teacher_latency_", "speedup_", "mem_", "teacher_mem_", "robust_")
TABLE_EXTRA = [f"robust_summary_{k}" for k in ("feat", "drop", "add", "train_noise", "poison_drop", "poison_add")] + [
               r"latency_online10_ms(@.*)?",
               r"teacher_latency_online10_ms(@.*)?", r"speedup_online10(@.*)?"]


def _per_hw(col: str) -> bool:
    """Hardware-dependent columns (never averaged across hw_id)."""
    return "latency" in col or "speedup" in col or col.startswith(("mem_", "teacher_mem_"))


#: the end-to-end median latencies that rank measurements of one workload (:func:`least_disturbed_timings`)
_E2E_LATENCY = re.compile(r"(teacher_)?latency_(full|online\d+(_sampled)?)_ms")


def _timing_key(row) -> Optional[str]:
    """What a run's latency columns measured (the key of :meth:`gkd_bench.runner.Runner.latency`, rebuilt from
    the record): hardware id, device, thread count, torch and DGL versions, dataset version, options,
    protocol, setting, seed (which draws the online nodes and the split), the teacher and student specs, the
    latency settings, full-batch or mini-batch evaluation (mini-batch runs leave out the whole-graph
    scenario), and the teacher's and student's parameter counts (standing in for the module trees, which
    records do not keep). ``None`` for a record without a spec."""
    spec = json.loads(row["spec"]) if isinstance(row.get("spec"), str) else None
    if spec is None:
        return None
    num = lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else int(v)  # noqa: E731
    return json.dumps([row.get("hw_id"), row.get("device"), num(row.get("latency_threads")),
                       row.get("torch_version"), row.get("dgl_version"), row.get("batching"),
                       row.get("dataset_version"), spec.get("dataset"), spec.get("dataset_options"),
                       spec.get("protocol"), spec.get("setting"), spec.get("seed"), spec.get("student"),
                       spec.get("teacher"), (spec.get("evaluation") or {}).get("latency"),
                       num(row.get("student_params")), num(row.get("teacher_params"))], sort_keys=True, default=str)


def least_disturbed_timings(ok: pd.DataFrame) -> pd.DataFrame:
    """Gives every run the least disturbed measurement of its workload (a copy; records are not changed).

    Inference time depends on the architectures and the input, not on the trained weights or the
    distiller (:mod:`gkd_bench.timing`). Runs that share a workload (:func:`_timing_key`) but were timed in
    different processes (``timing_run_id``) hold different numbers mostly because of other load on the
    machine at the time (a sweep beside them, a test run), which only slows a measurement down; on the
    2-core machine of the published sweeps the GAT teacher's full-graph latency on the same input ranged
    from 3.4 to 35.5 ms on cora. Each run therefore takes every hardware-dependent column (latencies,
    speedups, peak memory, ``timing_run_id``) from the one measurement of its workload with the smallest
    sum of log end-to-end median latencies (teacher and student, each scenario that every measurement of
    the workload has; logs, so that a slow full-graph teacher time does not outweigh the student's online
    times), as ``timeit`` advises for timings under interference. Teacher and student values of that
    measurement were taken back to back in one process, so its speedups stay paired. Runs without latency
    columns are left as they are. Measurements by different versions of the inference code are pooled too
    (records keep the git sha, not what changed): a later speed-up shows for earlier runs of the workload.

    Args:
        ok: one row per record (``spec``, ``hw_id``, the latency columns, ``timing_run_id``).
    Returns:
        a copy of ``ok`` with those columns replaced where a workload has more than one measurement.
    """
    ok = ok.copy()
    score_cols = [c for c in ok.columns if _E2E_LATENCY.fullmatch(c)]
    if not score_cols or "spec" not in ok:
        return ok
    logs = np.log(ok[score_cols].apply(pd.to_numeric, errors="coerce").clip(lower=1e-9)).to_numpy()
    timed = ~np.isnan(logs).all(axis=1)
    if timed.sum() < 2:
        return ok
    hw_cols = [c for c in ok.columns if _per_hw(c)]
    rows = np.flatnonzero(timed)  # positions: the index need not be unique
    keys = pd.Series([_timing_key(r) for r in ok.iloc[rows].to_dict("records")])
    # the process measurement each row holds (older records lack timing_run_id: the run itself)
    measured = (ok["timing_run_id"].fillna(ok["run_id"]) if "timing_run_id" in ok else ok["run_id"]).to_numpy(
        dtype=object)
    source = np.arange(len(ok))  # the row whose measurement each row shows
    for idx in keys.groupby(keys).indices.values():
        if len(set(measured[rows[idx]])) < 2:
            continue
        block = logs[rows[idx]]
        common = ~np.isnan(block).any(axis=0)  # scenarios every measurement of the workload has
        if common.any():
            source[rows[idx]] = rows[idx][np.argmin(block[:, common].sum(axis=1))]
    for c in hw_cols:  # whole columns: keeps each column's dtype
        ok[c] = ok[c].to_numpy()[source]
    ok.loc[timed, "timing_run_id"] = measured[source][timed]
    return ok


def load_runs(results_dir, suites: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """All records under ``results_dir/runs`` as a DataFrame (one row per run)."""
    rows = list(iter_records(Path(results_dir), list(suites) if suites else None))
    return pd.DataFrame(rows)


def _student_key(spec_json: str, params_json=None) -> str:
    """Pairs a run with its baseline: same data, setting and student. A searched student (``student`` in the
    record's ``search_params``) is matched by label, so gains compare the selected rows of both methods."""
    s = json.loads(spec_json)
    searched = isinstance(params_json, str) and "student" in json.loads(params_json)
    student = ["label", s["student"]["label"]] if searched else s["student"]["hparams"]
    return json.dumps([s["dataset"], s["protocol"], s["setting"], s["student"]["model"],
                       student, s.get("perturbation"), s.get("dataset_options")], sort_keys=True)


KD_SETTINGS = ("lam", "T", "kl_reduction", "kd_nodes")  # the hyperparameters of the KD term (kd and kd+x)


def _kd_key(spec_json: str) -> Optional[str]:
    """The KD-term settings of a run whose distiller has one (``kd``, ``kd+x``): ``lam``, ``T``,
    ``kl_reduction``, ``kd_nodes`` as JSON; None for a distiller without a KD term. A ``kd+x`` row's
    ``gain_vs_kd`` pairs with the ``kd`` config of the same settings when one was run."""
    d = json.loads(spec_json)["distiller"]
    hp = d.get("hparams") or {}
    if d.get("name") != "kd" and not str(d.get("name", "")).startswith("kd+"):
        return None
    num = lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v  # noqa: E731 (4 == 4.0)
    return json.dumps({k: num(hp.get(k)) for k in KD_SETTINGS}, sort_keys=True)


def _teacher_key(spec_json: str) -> str:
    t = json.loads(spec_json).get("teacher")
    return json.dumps(None if t is None else [t["model"], t["hparams"], t.get("train")], sort_keys=True)


def leaderboard(runs: pd.DataFrame, include_perturbed: bool = False, search_table=None) -> pd.DataFrame:
    """One row per config of the ``ok`` runs: mean, std (ddof=1) and n per metric; paired gains.

    Train-time robustness runs (``perturbation_kind`` set) are summarised into
    ``robust_summary_<kind>`` of their clean config; their own rows are kept
    only with ``include_perturbed`` (``leaderboard.csv`` and the curves do).

    Of a hyperparameter search group only the point selected on validation
    (:func:`gkd_bench.search.search_table`; pass ``search_table`` when already
    computed) is a row, with ``search_group``, ``search_selected`` (its label),
    ``search_candidates``, ``search_size``, ``search_provisional`` and ``search_pending``; the
    other points are left out before gains are paired, so ``gain_vs_none`` and
    ``gain_vs_kd`` compare selected rows.
    """
    if runs.empty or "status" not in runs:
        return pd.DataFrame()
    table = _search.search_table(runs) if search_table is None else search_table
    runs = _search.tagged(runs)
    ok = least_disturbed_timings(runs[runs["status"] == "ok"])  # unselected grid points' timings count too
    ok = ok[~ok["config_id"].isin(_search.unselected_config_ids(table))].copy()
    if ok.empty:
        return pd.DataFrame()
    for c in GROUP:
        ok[c] = ok[c].fillna("-")
    params = ok["search_params"] if "search_params" in ok else pd.Series([None] * len(ok), index=ok.index)
    ok["skey_"] = [_student_key(s, p) for s, p in zip(ok["spec"], params)]
    none = ok[ok["distiller_name"] == "none"].set_index(["skey_", "seed"])["test"]
    none = none[~none.index.duplicated()]
    ok["gain_"] = [t - none.get((k, s), np.nan) for t, k, s in zip(ok["test"], ok["skey_"], ok["seed"])]
    ok["tkey_"] = ok["spec"].map(_teacher_key)
    ok["kdkey_"] = ok["spec"].map(_kd_key)
    # the KD baseline of every row is one kd config, paired by seed within it (a seed it lacks gives NaN): for a
    # kd+x row the kd config with the row's own KD settings when one was run (the KD inside it), else the kd
    # config labelled `kd` (the selected point of a searched kd); ties: the smallest config_id
    kd = ok[ok["distiller_name"] == "kd"]
    kd = kd.assign(pref_=(kd["distiller"] != "kd").astype(int)).sort_values(["pref_", "config_id"], kind="stable")
    first = lambda keys: kd.drop_duplicates(keys).set_index(keys)["config_id"].to_dict()  # noqa: E731
    default_cfg, same_cfg = first(["skey_", "tkey_"]), first(["skey_", "tkey_", "kdkey_"])
    kd_test = dict(zip(zip(kd["config_id"], kd["seed"]), kd["test"]))

    def kd_baseline(k, tk, kk, name):
        cfg = same_cfg.get((k, tk, kk)) if name != "kd" and kk is not None else None
        return cfg or default_cfg.get((k, tk))

    ok["gain_kd_"] = [t - kd_test.get((kd_baseline(k, tk, kk, name), s), np.nan)
                      for t, k, tk, kk, s, name in zip(ok["test"], ok["skey_"], ok["tkey_"], ok["kdkey_"],
                                                       ok["seed"], ok["distiller_name"])]
    ok["rel_clean_"] = relative_to_clean(ok)  # train-time runs: test / clean test at the same seed
    extra = [c for c in ok.columns if c.startswith(EXTRA_PREFIXES) and c not in MEAN_COLS]
    # per-config mean (median for hardware-dependent columns) of every such column at once: a column-by-column
    # loop per config costs seconds on a full results folder (gkd-bench report --format html targets < 10 s)
    agg_cols = [c for c in dict.fromkeys(MEAN_COLS + extra) if c in ok]
    num = ok[agg_cols].apply(pd.to_numeric, errors="coerce").groupby(ok["config_id"], sort=False)
    med, avg = num.median(), num.mean()
    rows = []
    selected = _search.selection_columns(table)
    multi_hw = ok["hw_id"].nunique() > 1 if "hw_id" in ok else False
    for cid, g in ok.groupby("config_id", sort=False):
        first = g.iloc[0]
        row = {c: first[c] for c in GROUP}
        row.update(metric=first.get("metric"), n=len(g), distiller_name=first.get("distiller_name"))
        for c in METRIC_COLS + [c for c in g.columns if ONLINE_COL.fullmatch(c)]:
            if c in g and g[c].notna().any():
                row[f"{c}_mean"] = g[c].mean()
                row[f"{c}_std"] = g[c].std(ddof=1) if g[c].notna().sum() > 1 else np.nan
        if first["distiller_name"] != "none" and g["gain_"].notna().any():
            paired = g["gain_"].notna()
            row["none_paired_mean"] = (g["test"][paired] - g["gain_"][paired]).mean()  # `none` on these seeds
            row["gain_vs_none"] = g["gain_"].mean()
            sd = g["gain_"].std(ddof=1)
            row["gain_vs_none_std"] = sd
            row["gain_within_std"] = bool(np.isfinite(sd) and abs(row["gain_vs_none"]) <= sd)
        if first["distiller_name"] not in ("none", "kd") and g["gain_kd_"].notna().any():
            row["gain_vs_kd"] = g["gain_kd_"].mean()
            sd = g["gain_kd_"].std(ddof=1)
            row["gain_vs_kd_std"] = sd
            row["gain_vs_kd_within_std"] = bool(np.isfinite(sd) and abs(row["gain_vs_kd"]) <= sd)
        for c in agg_cols:
            if multi_hw and _per_hw(c):
                if g[c].notna().any():
                    for hw, gh in g.groupby("hw_id"):
                        row[f"{c}@{hw}"] = gh[c].median()
            else:
                v = (med if _per_hw(c) else avg).at[cid, c]
                if pd.notna(v):
                    row[c] = v
        row.update(perturbation_kind=first.get("perturbation_kind"), perturbation_level=first.get("perturbation_level"),
                   clean_key=first["ckey_"], robust_rel_clean=g["rel_clean_"].mean(),
                   structure_invariant=bool(g["structure_invariant"].fillna(False).any())
                   if "structure_invariant" in g else False)
        row.update(hw_id=",".join(sorted(g["hw_id"].dropna().unique())) if "hw_id" in g else None,
                   config_id=cid, hparams=first["hparams"])
        row.update(selected.get(cid, {}))
        rows.append(row)
    lb = add_train_time_summaries(pd.DataFrame(rows))
    if not include_perturbed and "perturbation_kind" in lb:
        lb = lb[lb["perturbation_kind"].isna()].reset_index(drop=True)
    return lb


def _pm(mean, std, n=None) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return ""
    s = f"{mean:.2f}"
    if std is not None and not (isinstance(std, float) and np.isnan(std)):
        s += f" ± {std:.2f}"
    if n is not None:
        s += f" ({n})"
    return s


def _selected_text(r) -> str:
    """A leaderboard row's selected grid point, ``T=4,lam=0.9`` (the full label ``mlp[..]+kd[..]`` when two
    entries are searched), ``*`` appended while provisional, ``+`` while the selected point still lacks
    seeds (stage 2 to run); blank for a row outside any search."""
    label = r.get("search_selected")
    if not isinstance(label, str):
        return ""
    m = re.fullmatch(r"[^\[\]]+\[([^\[\]]*)\]", label)
    flag = lambda k: isinstance(r.get(k), (bool, np.bool_)) and bool(r.get(k))  # noqa: E731 (NaN: no)
    mark = " *" if flag("search_provisional") else (" +" if flag("search_pending") else "")
    return (m.group(1) if m else label) + mark


def markdown_table(lb: pd.DataFrame) -> str:
    """The leaderboard as Markdown sections, one per (dataset, split, setting)."""
    out = []
    for (ds, split, setting), g in lb.groupby(["dataset", "split", "setting"], sort=True):
        metric = g["metric"].iloc[0]
        out.append(f"### {ds} — {split} split, {setting} ({metric})\n")
        curves = train_time_table(g)
        if "perturbation_kind" in g:  # train-time perturbed configs: their curve is below, not rows
            g = g[g["perturbation_kind"].isna()]
        g = g.sort_values("test_mean", ascending=False)
        t = pd.DataFrame({
            "teacher": g["teacher"], "student": g["student"], "distiller": g["distiller"],
            "test": [_pm(r.get("test_mean"), r.get("test_std"), r.get("n")) for _, r in g.iterrows()],
        })
        if "test_ind_mean" in g:
            t["test_tran"] = [_pm(r.get("test_tran_mean"), r.get("test_tran_std")) for _, r in g.iterrows()]
            t["test_ind"] = [_pm(r.get("test_ind_mean"), r.get("test_ind_std")) for _, r in g.iterrows()]
        if "search_selected" in g and g["search_selected"].notna().any():
            t["selected"] = [_selected_text(r) for _, r in g.iterrows()]
            t["candidates"] = ["" if pd.isna(r.get("search_size")) else
                               f"{int(r['search_candidates'])}/{int(r['search_size'])}" for _, r in g.iterrows()]
        if "teacher_test_mean" in g:
            t["teacher_test"] = [_pm(r.get("teacher_test_mean"), None) for _, r in g.iterrows()]
        if "gain_vs_none" in g:
            t["gain_vs_none"] = [
                "" if pd.isna(r.get("gain_vs_none")) else
                f"{r['gain_vs_none']:+.2f}{' ~' if r.get('gain_within_std') else ''}" for _, r in g.iterrows()]
        if "gain_vs_kd" in g:
            t["gain_vs_kd"] = [
                "" if pd.isna(r.get("gain_vs_kd")) else
                f"{r['gain_vs_kd']:+.2f}{' ~' if r.get('gain_vs_kd_within_std') else ''}" for _, r in g.iterrows()]
        for c in ANALYSIS_COLS:
            if c in g:
                t[c] = g[c].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
        for c in g.columns:
            if c.startswith(("student_params", "teacher_params")):
                t[c] = g[c].map(lambda v: "" if pd.isna(v) else f"{int(v):,}")
            elif c.startswith(("latency_full_ms", "teacher_latency_full_ms")):
                t[c] = g[c].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
            elif c.startswith("speedup_full"):
                t[c] = g[c].map(lambda v: "" if pd.isna(v) else f"{v:.1f}x")
        inv = g["structure_invariant"].fillna(False).astype(bool) if "structure_invariant" in g else None
        for pat in TABLE_EXTRA:
            for c in [c for c in g.columns if re.fullmatch(pat, c)]:
                if c.startswith("robust_"):
                    dag = c in ("robust_summary_drop", "robust_summary_add") and inv is not None
                    t[c] = [("" if pd.isna(v) else f"{v:.3f}") + (" †" if dag and f and not pd.isna(v) else "")
                            for v, f in zip(g[c], inv if inv is not None else [False] * len(g))]
                elif c.startswith("speedup_"):
                    t[c] = g[c].map(lambda v: "" if pd.isna(v) else f"{v:.1f}x")
                else:
                    t[c] = g[c].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
        out.append(t.to_markdown(index=False))
        out.append("")
        if curves:
            out.append(curves)
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


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def teacher_instances(runs: pd.DataFrame) -> str:
    """Markdown section listing, per (dataset, setting, teacher, seed, perturbation), the student runs that
    did not all distil from one teacher instance: ``teacher_weights_sha`` takes more than one value, or
    differs from the ``weights_sha`` of the teacher's own ``none`` run (e.g. a teacher retrained on
    another machine or torch build after its published run); ``""`` when every fingerprint agrees.
    Records without the fingerprints (made before they existed) are left out.
    """
    need = {"teacher_weights_sha", "weights_sha", "status", "teacher", "student", "distiller_name", "seed"}
    if runs.empty or not need <= set(runs.columns):
        return ""
    ok = runs[runs["status"] == "ok"].copy()
    for c in ("perturbation_kind", "perturbation_level", "setting"):
        ok[c] = ok[c].astype(object).where(ok[c].notna(), "-") if c in ok else "-"
    key = ["dataset", "setting", "seed", "perturbation_kind", "perturbation_level"]
    own = ok[ok["teacher"].isna() & (ok["distiller_name"] == "none") & ok["weights_sha"].notna()]
    own_sha = {tuple(r[k] for k in key) + (r["student"],): r["weights_sha"] for _, r in own.iterrows()}
    students = ok[ok["teacher"].notna() & ok["teacher_weights_sha"].notna()]
    rows = []
    for k, g in students.groupby(key + ["teacher"], sort=True):
        used = sorted(g["teacher_weights_sha"].unique())
        mine = own_sha.get(tuple(k))
        if len(used) > 1 or (mine is not None and used != [mine]):
            rows.append({"dataset": k[0], "setting": k[1], "teacher": k[5], "seed": k[2],
                         "perturbation": "-" if k[3] == "-" else f"{k[3]} {k[4]}",
                         "teacher run's weights_sha": mine or "-", "students' teacher_weights_sha":
                         ", ".join(f"{u} ({_runs((g['teacher_weights_sha'] == u).sum())})" for u in used)})
    if not rows:
        return ""
    return ("## Teacher instances\n\nStudent runs of one teacher and seed that distilled from different teacher "
            "weights, or from weights other than the teacher's own run (`teacher_weights_sha` vs `weights_sha`; "
            "e.g. a teacher retrained on another machine or torch build):\n\n"
            + pd.DataFrame(rows).to_markdown(index=False) + "\n")


def side_by_side_latency(results_dir, suite: str) -> Optional[pd.DataFrame]:
    """Rows of ``results_dir/<suite>/online_latency.json`` (``benchmarks/sa_mlp_latency.py``: online
    latencies timed side by side in one process) or ``None`` when the file is absent.

    Raises:
        ValueError: the file exists but is not valid JSON with a ``rows`` list.
    """
    path = Path(results_dir) / suite / "online_latency.json"
    if not path.exists():
        return None
    try:
        rows = json.loads(path.read_text())["rows"]
        if not isinstance(rows, list):
            raise TypeError("rows is not a list")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is malformed ({e}); re-run benchmarks/sa_mlp_latency.py") from e
    return pd.DataFrame(rows)


def write_report(results_dir, suite: str, out_dir=None, formats: Sequence[str] = ("markdown", "csv")) -> List[Path]:
    """Write ``runs.csv``, ``leaderboard.csv`` and/or ``LEADERBOARD.md`` for ``suite``.

    With hyperparameter searches the leaderboard has the selected points only,
    ``search.csv`` every grid point (:func:`gkd_bench.search.search_table`) and
    ``LEADERBOARD.md`` a "Hyperparameter search" section.

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
    grid = _search.search_table(runs)
    lb = leaderboard(runs, include_perturbed=True, search_table=grid)
    paths = []
    if "csv" in formats:
        runs.drop(columns=["spec"], errors="ignore").to_csv(out / "runs.csv", index=False)
        lb.to_csv(out / "leaderboard.csv", index=False)
        paths += [out / "runs.csv", out / "leaderboard.csv"]
        if not grid.empty:
            grid.drop(columns=["group_key"]).to_csv(out / "search.csv", index=False)
            paths.append(out / "search.csv")
    if "markdown" in formats:
        parts = [f"# Leaderboard: suite `{suite}`\n",
                 f"{len(runs)} records, {int((runs['status'] == 'ok').sum())} ok. "
                 "Generated by `gkd-bench report` from the records in "
                 f"`runs/{suite}/`; do not edit by hand.\n"]
        if not lb.empty:
            parts.append(markdown_table(lb))
        from gkd_bench.claims import alignahead_claims, sa_mlp_claims

        # each section is "" unless the leaderboard holds its methods' rows
        parts += [text for text in (alignahead_claims(lb), sa_mlp_claims(lb, side_by_side_latency(results_dir, suite)))
                  if text]
        from gkd_bench.plots import markdown_section, write_plots

        plots = write_plots(lb, out)
        parts.append(markdown_section(plots))
        paths += plots
        if not grid.empty:
            parts.append(_search.markdown_search(grid))
        parts.append(problems_table(runs))
        parts.append(teacher_instances(runs))
        parts.append("## Column definitions\n")
        parts += [f"- **{k}**: {v}" for k, v in DEFINITIONS.items()]
        if not grid.empty:
            parts += [f"- **{k}**: {v}" for k, v in SEARCH_DEFINITIONS.items()]
        envs = runs.drop_duplicates("hw_id") if "hw_id" in runs else runs.iloc[:0]
        parts.append("\n## Hardware\n")
        for _, r in envs.iterrows():
            parts.append(f"- `{r['hw_id']}`: {r.get('cpu_model')}, {r.get('cpu_cores')} cores, "
                         f"{r.get('threads')} threads, {r.get('device')}; torch {r.get('torch_version')}, "
                         f"dgl {r.get('dgl_version')}")
        (out / "LEADERBOARD.md").write_text("\n".join(parts) + "\n")
        paths.append(out / "LEADERBOARD.md")
    return paths
