"""How far a sweep has come: ``gkd-bench status``.

Per dataset and setting of a (narrowed) suite: the runs planned, how many have an ``ok``, a failed
(``error``, ``oom``, ``timeout``) or a ``skipped`` record, how many are still to run (no record, or an
interrupted run's ``running`` one), the stage-2 runs of two-stage searches that stage 1 has not decided
yet, the training hours the finished runs took, and an estimate of the hours left. The estimate is a
guide, not a promise: each run still to do (failed ones included: ``gkd-bench run`` runs them again)
counts the median ``train_s`` of the finished runs of the same student and suite distiller entry (or
search group) on that dataset and setting; ``train_s`` is wall time, so
it carries the load the sweeps ran under, and runs of a kind with no finished run yet are left out
(``unestimated``: costs differ too much between distillers, K peer students or datasets to borrow one).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd

from gkd_bench.records import read_record, record_path
from gkd_bench.search import is_stage2, stage2_specs

#: record statuses counted as ``failed`` (an interrupted run's ``running`` record counts as to do)
FAILED = {"error": "failed", "oom": "failed", "timeout": "failed"}
COLUMNS = ["dataset", "setting", "runs", "ok", "failed", "skipped", "to_do", "stage2_undecided",
           "train_h_done", "est_h_to_do", "unestimated"]


def _kind(spec) -> Tuple[str, str, str, str]:
    """What a run's cost depends on, for the estimate: dataset, setting, student, and the suite's distiller
    entry (its label; the points of a search grid share their group's)."""
    return (spec.dataset, spec.setting, spec.student["label"],
            spec.search["group"] if spec.search else spec.distiller["label"])


def status_table(results_dir, specs: Sequence) -> pd.DataFrame:
    """One row per (dataset, setting) of ``specs`` and a final ``total`` row (columns :data:`COLUMNS`).

    Args:
        results_dir: folder holding ``runs/<suite>/``.
        specs: :func:`gkd_bench.spec.expand` of the suite with ``all_seeds=True`` (stage-2 candidates of
            two-stage searches included: those of decided groups count as planned runs, the others as
            ``stage2_undecided``, one run per group and seed).

    Returns:
        a DataFrame; ``runs`` = ``ok + failed + skipped + to_do`` (decided runs), hours rounded to 0.01.
        ``est_h_to_do`` covers ``to_do`` and ``stage2_undecided`` runs of a kind with a finished run;
        the others are counted in ``unestimated``.
    """
    planned = [s for s in specs if not is_stage2(s)]
    decided, undecided = stage2_specs(results_dir, list(specs))
    planned += decided
    undecided = [s for s in undecided if s.search["index"] == 0]  # one grid point of each group will run
    rows: List[dict] = []
    for s in planned:
        rec = read_record(record_path(Path(results_dir), s.suite, s.run_id)) or {}
        status = FAILED.get(rec.get("status"), rec.get("status"))
        rows.append({"key": _kind(s), "dataset": s.dataset, "setting": s.setting,
                     "status": status if status in ("ok", "failed", "skipped") else "to_do",  # none, running
                     "train_s": rec.get("train_s") if status == "ok" else None})
    rows += [{"key": _kind(s), "dataset": s.dataset, "setting": s.setting, "status": "stage2_undecided",
              "train_s": None} for s in undecided]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    df = pd.DataFrame(rows)
    df["train_s"] = pd.to_numeric(df["train_s"], errors="coerce")
    done = df[df["status"] == "ok"]
    by_kind: Dict = done.groupby("key")["train_s"].median().to_dict()
    todo = df["status"].isin(["to_do", "failed", "stage2_undecided"])  # failed runs run again
    est = [by_kind.get(k, np.nan) if t else np.nan for k, t in zip(df["key"], todo)]
    df["est_s"] = est
    df["unestimated"] = todo & df["est_s"].isna()
    out = []
    for (ds, st), g in df.groupby(["dataset", "setting"], sort=True):
        counts = g["status"].value_counts()
        n = {k: int(counts.get(k, 0)) for k in ("ok", "failed", "skipped", "to_do", "stage2_undecided")}
        out.append({"dataset": ds, "setting": st, "runs": n["ok"] + n["failed"] + n["skipped"] + n["to_do"], **n,
                    "train_h_done": round(float(g["train_s"].sum()) / 3600, 2),
                    "est_h_to_do": round(float(np.nansum(g["est_s"])) / 3600, 2),
                    "unestimated": int(g["unestimated"].sum())})
    table = pd.DataFrame(out, columns=COLUMNS)
    total = {c: table[c].sum() for c in COLUMNS[2:]}
    total.update(dataset="total", setting="", train_h_done=round(total["train_h_done"], 2),
                 est_h_to_do=round(total["est_h_to_do"], 2))
    return pd.concat([table, pd.DataFrame([total], columns=COLUMNS)], ignore_index=True)
