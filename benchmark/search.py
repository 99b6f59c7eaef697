"""Hyperparameter search: grid points, their record columns, and selection on validation (report side).

A suite entry with ``search: {param: [values]}`` expands into one ordinary
configuration per grid point (:func:`gkd_bench.spec.entry_points`). Each run of
a grid point carries the columns :data:`COLUMNS` in its record:

- ``search_group``: the searched entry's label (``kd``; ``mlp+kd`` when the
  student and the distiller are both searched);
- ``search_label``: the point's readable label (``kd[T=4,lam=0.8]``);
- ``search_index`` / ``search_size``: the point's position in the grid and the
  number of points (:func:`grid_points` order);
- ``search_grid`` / ``search_params``: the grid and the point as JSON
  ``{role: {param: values | value}}`` (role ``student`` or ``distiller``);
- ``search_seeds``: the seeds the suite runs, JSON list;
- ``search_tune_seeds``: a two-stage search's search seeds, JSON list (absent otherwise).

Selection (:func:`search_table`), from records only: the candidates of a group
are the configurations that share everything but the searched values (same
suite, dataset, split, options, setting, perturbation, teacher, student and
distiller labels, and the same grid). The selected point is the one with the
highest mean validation score (``val``) over its finished (``ok``) seeds; ties
(means within :data:`TIE_TOLERANCE`) go to more finished seeds, then to the earlier grid point (lower
``search_index``). Test scores are never read by the selection. A selection is
*provisional* while any grid point lacks a finished run for any of the group's
seeds (the union of ``search_seeds`` over its records). A configuration's
score uses all its finished seeds, including seeds run before the search
(:func:`tagged`). Train-time perturbed copies of a group (robustness runs)
show the point selected for the clean group, so a robustness curve follows
the method as selected on clean data.

Two-stage search (``search: {lam: [0.8, 0.9], seeds: 0-2}``; ``seeds`` is a
reserved key, a subset of the suite's seeds): stage 1 runs every grid point on
the search seeds only (:func:`gkd_bench.spec.expand`). Once every grid point
of a group has a finished run on every search seed, the point selected on the
mean validation score over the search seeds (ties: as above, then the earlier
point) runs on the suite's other seeds (stage 2, :func:`stage2_specs`, from
the records only; `gkd-bench run` does both stages). Train-time perturbed
copies of such a group are stage-2 runs of the clean selection only. In the
report, a two-stage group's selection reads validation scores of the search
seeds only (``val_mean``/``val_std`` of its grid points are over the search
seeds, so the selected point's later seeds cannot change the choice), ``n`` /
``test_mean`` / ``test_std`` use every finished seed (the leaderboard row: the
selected point's test mean ± std over all its seeds), ``n_search`` counts the
finished search seeds; the selection is provisional while stage 1 is
incomplete (a grid point lacks a finished run on a search seed), and stage 2
does not run then.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Dict, Iterable, List, Optional

COLUMNS = ("search_group", "search_label", "search_index", "search_size", "search_grid", "search_params",
           "search_seeds", "search_tune_seeds")
ROLES = ("student", "distiller")  # a grid's roles in order: the student's index varies slowest


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def format_value(v) -> str:
    """A hyperparameter value as it appears in a grid-point label: floats in ``%g`` (4.0 -> ``4``,
    1e-05 -> ``1e-05``), booleans and None as in YAML, strings as they are, anything else as JSON."""
    if isinstance(v, bool) or v is None:
        return {True: "true", False: "false", None: "null"}[v]
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, (int, str)):
        return str(v)
    return _canonical(v)


def point_label(label: str, point: dict) -> str:
    """The readable label of one grid point: ``kd`` and ``{"lam": 0.8, "T": 4.0}`` -> ``kd[T=4,lam=0.8]``.

    Parameters are sorted by name (Python string order, so upper case first); values use :func:`format_value`.
    """
    return f"{label}[{','.join(f'{k}={format_value(point[k])}' for k in sorted(point))}]"


def grid_points(grid: Dict[str, list]) -> List[dict]:
    """The Cartesian product of a grid ``{param: [values]}`` in grid order: params sorted by name, the first
    varying slowest, values in the order written. ``{"lam": [0.8, 0.9], "T": [4, 5]}`` -> (T=4, lam=0.8),
    (T=4, lam=0.9), (T=5, lam=0.8), (T=5, lam=0.9)."""
    keys = sorted(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def group_points(grid: Dict[str, Dict[str, list]], labels: Dict[str, str]) -> List[str]:
    """Labels of every point of a (possibly two-role) grid, in index order.

    Args:
        grid: ``{role: {param: [values]}}`` as in ``search_grid``.
        labels: ``{role: entry label}``.

    Returns:
        ``[label of index 0, label of index 1, ...]``; a two-role point is ``mlp[dropout=0.1]+kd[T=4]``.
    """
    per_role = [[point_label(labels[r], p) for p in grid_points(grid[r])] for r in ROLES if r in grid]
    return ["+".join(parts) for parts in itertools.product(*per_role)]


def search_columns(search: Optional[dict]) -> dict:
    """The record columns (:data:`COLUMNS`) of a run's ``RunSpec.search``; ``{}`` for a run outside any search
    (its record then has no search columns at all, as before searches existed)."""
    if not search:
        return {}
    out = {"search_group": search["group"], "search_label": search["label"], "search_index": search["index"],
           "search_size": search["size"], "search_grid": _canonical(search["grid"]),
           "search_params": _canonical(search["params"]), "search_seeds": _canonical(search["seeds"])}
    if search.get("tune_seeds") is not None:
        out["search_tune_seeds"] = _canonical(search["tune_seeds"])
    return out


# ------------------------------------------------------------------------------------- two-stage search
def is_stage2(spec) -> bool:
    """Whether a run is a stage-2 candidate of a two-stage search: a grid point on a seed outside the search
    seeds, or a train-time perturbed copy (perturbed copies only run the clean selection)."""
    s = getattr(spec, "search", None)
    return bool(s) and s.get("tune_seeds") is not None and (
        spec.perturbation is not None or spec.seed not in s["tune_seeds"])


def _stage_key(spec) -> str:
    """The clean search group of a spec (everything but the seed, the searched values and the perturbation)."""
    s = spec.search
    return _canonical([spec.suite, spec.dataset, spec.protocol, spec.setting, spec.dataset_options, spec.teacher,
                       spec.student["label"], spec.distiller["label"], s["group"], s["grid"], s["tune_seeds"]])


def tune_score(vals) -> float:
    """Mean validation score over the search seeds (non-numbers and NaN ignored; NaN when none is left);
    the same function in :func:`stage2_specs` and :func:`search_table`, so both select the same point."""
    xs = []
    for v in vals:
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if not math.isnan(x):
            xs.append(x)
    return math.fsum(xs) / len(xs) if xs else math.nan


def stage2_specs(results_dir, specs) -> tuple:
    """The stage-2 runs of the two-stage searches among ``specs``, decided from the records of stage 1.

    Args:
        results_dir: folder holding ``runs/<suite>/``.
        specs: :func:`gkd_bench.spec.expand` with ``all_seeds=True`` (runs of other seeds and searches are
            ignored).

    Returns:
        ``(decided, pending)``: the stage-2 candidates (:func:`is_stage2`) of the selected point of every
        group whose stage 1 is complete (every grid point has an ``ok`` record on every search seed), and the
        candidates of the groups still undecided (every grid point's; one point of them will run).
    """
    import dataclasses

    from gkd_bench.records import read_record, record_path

    groups: Dict[str, dict] = {}
    for spec in specs:
        if spec.search and spec.search.get("tune_seeds") is not None and spec.perturbation is None:
            groups.setdefault(_stage_key(spec), {})[spec.search["index"]] = spec
    winners = {}
    for key, points in groups.items():
        first = next(iter(points.values()))
        if len(points) < first.search["size"]:
            continue  # a grid point outside the expansion: nothing to decide from
        cands, complete = [], True
        for index, spec in sorted(points.items()):
            vals = []
            for seed in first.search["tune_seeds"]:
                run_id = dataclasses.replace(spec, seed=seed).run_id
                rec = read_record(record_path(Path(results_dir), spec.suite, run_id)) or {}
                if rec.get("status") != "ok":
                    complete = False
                    break
                vals.append(rec.get("val"))
            if not complete:
                break
            cands.append({"search_index": index, "n": len(vals), "val_mean": tune_score(vals)})
        if complete:
            winners[key] = select(cands)
    decided, pending = [], []
    for spec in specs:
        if is_stage2(spec):
            key = _stage_key(spec)
            if key not in winners:
                pending.append(spec)
            elif spec.search["index"] == winners[key]:
                decided.append(spec)
    return decided, pending


def sync_records(results_dir, specs: Iterable) -> int:
    """Make existing records carry the search columns of the specs that reuse them; returns how many changed.

    A grid point equal to a configuration run before the search existed has the
    same ``run_id``, so its record is reused rather than rerun; this writes the
    point's search columns into that record (atomically) so the report can
    group it. A record of a spec outside any search loses stale search columns.
    ``search_seeds`` keeps the union with the seeds already recorded. Records
    already in agreement are not rewritten.

    Args:
        results_dir: folder holding ``runs/<suite>/``.
        specs: :class:`gkd_bench.spec.RunSpec` objects (``suite``, ``run_id``, ``search``).

    Raises:
        OSError: a record cannot be rewritten.
    """
    from gkd_bench.records import read_record, record_path, write_record

    changed = 0
    for spec in specs:
        path = record_path(Path(results_dir), spec.suite, spec.run_id)
        rec = read_record(path)
        if rec is None:
            continue
        want = search_columns(getattr(spec, "search", None))
        if want and rec.get("search_seeds") and all(rec.get(k) == want.get(k) for k in COLUMNS if k != "search_seeds"):
            try:
                seeds = sorted(set(json.loads(rec["search_seeds"])) | set(json.loads(want["search_seeds"])))
                want["search_seeds"] = _canonical(seeds)
            except (TypeError, ValueError):
                pass
        if all(rec.get(k) == want.get(k) for k in COLUMNS):
            continue
        new = {k: v for k, v in rec.items() if k not in COLUMNS}
        new.update(want)
        write_record(path, new)
        changed += 1
    return changed


def _group_key(spec_json: str, params_json: str, grid_json: str, group: str, clean: bool = False) -> str:
    """Everything that defines a run but the seed, the suite and the searched values, plus the grid;
    ``clean``: also without the train-time perturbation (the key of the clean group it follows)."""
    s = json.loads(spec_json)
    for k in ("seed", "suite", "evaluation", "search") + (("perturbation",) if clean else ()):
        s.pop(k, None)
    for role, point in json.loads(params_json).items():
        for key in point:
            if key.startswith("train."):
                (s.get("student") or {}).get("train", {}).pop(key[len("train."):], None)
            else:
                (s.get(role) or {}).get("hparams", {}).pop(key, None)
    return _canonical([s, group, json.loads(grid_json)])


def tagged(runs):
    """``runs`` (a DataFrame of records) with the search columns of each configuration copied onto every
    record of that configuration (by ``config_id``), so seeds run before the search belong to its point.

    Returns a copy; untouched when no record has ``search_group``.
    """
    if runs.empty or "search_group" not in runs or not runs["search_group"].notna().any():
        return runs
    runs = runs.copy()
    first = runs[runs["search_group"].notna()].drop_duplicates("config_id").set_index("config_id")
    for c in COLUMNS:
        if c in runs:
            runs[c] = runs[c].astype(object)
            fill = runs["config_id"].map(first[c])
            runs[c] = runs[c].where(runs[c].notna(), fill)
    return runs


SEARCH_TABLE_COLS = ["dataset", "split", "setting", "teacher", "student", "distiller", "search_group",
                     "search_label", "search_index", "search_size", "n", "n_search", "n_expected", "val_mean", "val_std",
                     "test_mean", "test_std", "selected", "provisional", "config_id", "hparams"]


def search_table(runs):
    """One row per grid point of every search group in ``runs`` (a DataFrame of records), with the selection.

    Columns :data:`SEARCH_TABLE_COLS` (plus ``perturbation_kind`` / ``perturbation_level`` when present and
    ``group_key``; a train-time perturbed group takes the point selected for its clean group, when that has
    records): ``n`` finished seeds, ``n_expected`` the group's seeds, ``val_mean``/``val_std`` and
    ``test_mean``/``test_std`` over the finished seeds (std ddof=1), ``selected`` (one point per group with a
    finished run), ``provisional`` (group-wide). Grid points without any record are listed with ``n`` 0 and
    no ``config_id``. The selection reads ``val`` and ``n`` only (module docstring for the rule). Two-stage
    groups: ``val_mean``/``val_std`` and ``n_search`` over the search seeds only, ``n_expected`` the
    search seeds (the selected point: every seed); elsewhere ``n_search`` equals ``n``.

    Returns:
        a DataFrame, empty when no record carries ``search_group``.
    """
    import pandas as pd

    runs = tagged(runs)
    if runs.empty or "search_group" not in runs or not runs["search_group"].notna().any():
        return pd.DataFrame(columns=SEARCH_TABLE_COLS)
    rec = runs[runs["search_group"].notna()].copy()
    cols = list(zip(rec["spec"], rec["search_params"], rec["search_grid"], rec["search_group"]))
    rec["group_key"] = [_group_key(*c) for c in cols]
    rec["clean_key_"] = [_group_key(*c, clean=True) for c in cols]
    perturbed = rec["spec"].map(lambda sp: json.loads(sp).get("perturbation") is not None).astype(bool)
    rec["perturbed_"] = perturbed
    extra = [c for c in ("perturbation_kind", "perturbation_level") if c in rec]
    rows, clean_pick, clean_prov = [], {}, {}
    # clean groups first: a train-time perturbed copy of a group shows the point selected on clean data
    for gkey, g in itertools.chain(rec[~perturbed].groupby("group_key", sort=False),
                                   rec[perturbed].groupby("group_key", sort=False)):
        first = g.iloc[0]
        grid = json.loads(first["search_grid"])
        labels = {"student": first["student"], "distiller": first["distiller"]}
        expected = set()
        for seeds in g["search_seeds"].dropna():
            expected |= set(json.loads(seeds))
        tune = set()
        if "search_tune_seeds" in g:
            for seeds in g["search_tune_seeds"].dropna():
                tune |= set(json.loads(seeds))
        base = {c: first.get(c) for c in ("dataset", "split", "setting", "teacher", "student", "distiller",
                                          "search_group") + tuple(extra)}
        points = []
        for index, label in enumerate(group_points(grid, labels)):
            pg = g[g["search_index"].astype(int) == index]
            ok = pg[pg["status"] == "ok"] if "status" in pg else pg.iloc[:0]
            val = pd.to_numeric(ok["val"], errors="coerce") if "val" in ok else pd.Series(dtype=float)
            test = pd.to_numeric(ok["test"], errors="coerce") if "test" in ok else pd.Series(dtype=float)
            seeds_ok = set(ok["seed"].astype(int))
            point = {**base, "search_label": label, "search_index": index,
                     "search_size": int(first["search_size"]), "n": int(ok["seed"].nunique()),
                     "n_search": int(ok["seed"].nunique()), "n_expected": len(expected),
                     "val_mean": val.mean() if val.notna().any() else math.nan,
                     "val_std": val.std(ddof=1) if val.notna().sum() > 1 else math.nan,
                     "test_mean": test.mean() if test.notna().any() else math.nan,
                     "test_std": test.std(ddof=1) if test.notna().sum() > 1 else math.nan,
                     "complete": expected <= seeds_ok and len(ok) > 0,
                     "config_id": pg["config_id"].iloc[0] if len(pg) else None,
                     "hparams": pg["hparams"].iloc[0] if len(pg) and "hparams" in pg else None,
                     "group_key": gkey}
            if tune:  # two-stage: the selection reads the search seeds only
                on = ok["seed"].astype(int).isin(tune)
                tv = pd.to_numeric(ok.loc[on, "val"], errors="coerce") if "val" in ok else pd.Series(dtype=float)
                point.update(n_search=int(ok.loc[on, "seed"].nunique()),
                             val_mean=tune_score(tv.sort_index().tolist()),
                             val_std=tv.std(ddof=1) if tv.notna().sum() > 1 else math.nan,
                             complete=tune <= seeds_ok, n_expected=len(tune))
            points.append(point)
        provisional = not all(p["complete"] for p in points)
        if not first["perturbed_"]:
            best = clean_pick[first["clean_key_"]] = select(
                [{**p, "n": p["n_search"]} for p in points])
            clean_prov[first["clean_key_"]] = provisional
        elif first["clean_key_"] in clean_pick:
            best = clean_pick[first["clean_key_"]]
            if tune:  # stage 2 runs the clean selection only: final when the clean one is
                provisional = clean_prov[first["clean_key_"]]
        else:
            best = select([{**p, "n": p["n_search"]} for p in points])
        for p in points:
            p.pop("complete")
            if tune and p["search_index"] == best:  # the selected point runs on every seed
                p["n_expected"] = len(expected) if first["perturbed_"] else len(expected | tune)
            p.update(selected=p["search_index"] == best, provisional=provisional)
        rows += points
    return pd.DataFrame(rows)[SEARCH_TABLE_COLS + extra + ["group_key"]]


#: validation means (in %) closer than this are a tie: records hold float32 scores, so equal fractions of
#: correct nodes (94/59 on two seeds of a point each) can differ by ~1e-6 after averaging, while the smallest
#: real difference is one node on the largest validation set over the search seeds (ogbn-arxiv: 100 / 29799
#: / 3 = 1.1e-3 points)
TIE_TOLERANCE = 1e-4


def select(points: List[dict]) -> Optional[int]:
    """The ``search_index`` of the selected point among ``points`` (dicts with ``search_index``, ``n`` finished
    seeds and ``val_mean``): the highest ``val_mean``, then more ``n``, then the lower index; means within
    :data:`TIE_TOLERANCE` of the highest are ties. Points without a finished seed are not candidates; a NaN
    ``val_mean`` ranks below any number. ``None`` without candidates. Test scores are not an input."""
    cands = [p for p in points if p["n"] > 0]
    if not cands:
        return None

    def val(p):
        v = p["val_mean"]
        return -math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else v

    top = max(val(p) for p in cands)
    tied = [p for p in cands if val(p) == top or val(p) >= top - TIE_TOLERANCE]
    return max(tied, key=lambda p: (p["n"], -p["search_index"]))["search_index"]


def selection_columns(table) -> Dict[str, dict]:
    """``config_id`` of each selected point -> its leaderboard columns: ``search_group``, ``search_selected``
    (the point's label), ``search_candidates`` (points with a finished seed), ``search_size`` (grid points),
    ``search_provisional`` (some grid point lacks a search seed: the selection may change) and
    ``search_pending`` (the selection is final but the selected point lacks some of its seeds: in a
    two-stage search, stage 2 has not run them all yet)."""
    out = {}
    if table.empty:
        return out
    for _, g in table.groupby("group_key", sort=False):
        sel = g[g["selected"]]
        if sel.empty:
            continue
        r = sel.iloc[0]
        out[r["config_id"]] = {"search_group": r["search_group"], "search_selected": r["search_label"],
                               "search_candidates": int((g["n"] > 0).sum()), "search_size": int(r["search_size"]),
                               "search_provisional": bool(r["provisional"]),
                               # a final selection whose point still lacks seeds (two-stage: stage 2 to run)
                               "search_pending": bool(not r["provisional"] and r["n"] < r["n_expected"])}
    return out


def unselected_config_ids(table) -> set:
    """Config ids of grid points that were run but not selected (the leaderboard leaves them out)."""
    if table.empty:
        return set()
    return set(table.loc[~table["selected"].astype(bool) & table["config_id"].notna(), "config_id"])


def markdown_search(table) -> str:
    """The grid table as Markdown: one section per (dataset, split, setting), every grid point with its mean
    val and test scores, the selected point marked. Empty string without searches."""
    import pandas as pd

    if table.empty:
        return ""
    out = ["## Hyperparameter search\n",
           "Every grid point of every search group. The selected point (**sel**) has the highest mean "
           "validation score over its finished seeds (ties: more seeds, then the earlier grid point); test "
           "scores play no part. *provisional*: some grid point still lacks a seed. Two-stage searches "
           "(search seeds): val is over the search seeds only and selects; the selected point then runs on "
           "every seed, and its test is over all of them (seeds: finished / expected). Also in "
           "`search.csv`.\n"]

    def pm(m, s):
        if m is None or (isinstance(m, float) and math.isnan(m)):
            return ""
        return f"{m:.2f}" + ("" if s is None or (isinstance(s, float) and math.isnan(s)) else f" ± {s:.2f}")

    for (ds, split, setting), g in table.groupby(["dataset", "split", "setting"], sort=True):
        out.append(f"### {ds} — {split} split, {setting}\n")
        t = pd.DataFrame({
            "teacher": g["teacher"].fillna("-"), "student": g["student"], "group": g["search_group"],
            "grid point": g["search_label"],
            "val": [pm(m, s) for m, s in zip(g["val_mean"], g["val_std"])],
            "test": [pm(m, s) for m, s in zip(g["test_mean"], g["test_std"])],
            "seeds": [f"{n}/{e}" for n, e in zip(g["n"], g["n_expected"])],
            "selected": ["sel" + (" (provisional)" if p else "") if s else ""
                         for s, p in zip(g["selected"], g["provisional"])],
        })
        out.append(t.to_markdown(index=False))
        out.append("")
    return "\n".join(out)
