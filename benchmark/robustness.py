"""Robustness protocols: suite configuration, test-time evaluations, record columns.

DESIGN.md "Evaluation protocols", Robustness. A suite configures them with a
top-level ``robustness`` block (every key optional)::

    robustness:
      feature_noise: [0.1, 0.3, 0.5, 0.7, 0.9]  # test time, model trained clean
      edge_drop: [0.05, 0.1, 0.2, 0.5]           # test time (evasion)
      edge_add: [0.05, 0.1, 0.2, 0.5]            # test time (evasion)
      train_noise: [0.1, 0.3, 0.5, 0.7, 0.9]     # before training (GLNN/NOSMOG protocol)
      poison_drop: [0.05, 0.1, 0.2, 0.5]         # before training (poisoning)
      poison_add: [0.05, 0.1, 0.2, 0.5]          # before training (poisoning)
      train_seeds: 0-4                           # seeds of the train-time runs (default: the suite's)

Test-time entries default to the levels above (the three curves are cheap:
forward passes only) and run on every clean run; ``[]`` switches one off,
``robustness: false`` all of them. Train-time entries default to none: each
level becomes an extra RunSpec with ``perturbation = {"kind", "level"}``
applied to the data in ``Runner.load_data`` before the teacher and the
student train (the teacher cache key includes it, the teacher spec inherits
it), so such a run's ``test`` column is its point on the curve.

Columns of a clean run's record (scores in %, same metric as ``test``):
``robust_feat_<a>``, ``robust_drop_<p>``, ``robust_add_<p>``; summaries
``robust_summary_{feat,drop,add}`` = mean over levels of perturbed / clean
test score (a ratio, 1 = unaffected); ``structure_invariant`` = True for
graph-free students (``graph_free = True``), whose edge-perturbation values
are reported (equal to clean by construction) and flagged. Train-time runs
carry ``perturbation_kind`` and ``perturbation_level``; the report pairs them
with the clean config into ``robust_summary_{train_noise,poison_drop,poison_add}``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, List, Optional

if TYPE_CHECKING:  # torch-free at import: the report and the site read records through this module
    from gkd_bench.data import GraphData

DEFAULT_NOISE = [0.1, 0.3, 0.5, 0.7, 0.9]
DEFAULT_EDGE = [0.05, 0.1, 0.2, 0.5]
TEST_TIME = {"feature_noise": ("feat", "feature_noise"), "edge_drop": ("drop", "edge_drop"),
             "edge_add": ("add", "edge_add")}
TRAIN_TIME = {"train_noise": "feature_noise", "poison_drop": "edge_drop", "poison_add": "edge_add"}
TRAIN_NAME = {v: k for k, v in TRAIN_TIME.items()}
KEYS = set(TEST_TIME) | set(TRAIN_TIME) | {"train_seeds"}
DEFAULTS = {"feature_noise": DEFAULT_NOISE, "edge_drop": DEFAULT_EDGE, "edge_add": DEFAULT_EDGE}


def level_name(level: float) -> str:
    """Column suffix of a level: ``0.1`` -> ``"0.1"``, ``0.05`` -> ``"0.05"`` (``%g``)."""
    return f"{float(level):g}"


def _levels(key: str, value) -> List[float]:
    from gkd_bench.spec import SuiteError

    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        value = [value]
    out = []
    for v in value:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise SuiteError(f"robustness.{key}: level {v!r} is not a number") from None
        if not 0.0 < f <= 1.0:
            raise SuiteError(f"robustness.{key}: level {f} must be in (0, 1]")
        out.append(f)
    return sorted(set(out))


def resolve_robustness(cfg) -> dict:
    """A suite's ``robustness`` value -> fully resolved dict (lists of float levels).

    ``None`` (key absent) gives the default test-time levels and no train-time
    runs; ``False`` switches everything off.

    Raises:
        SuiteError: not a mapping, unknown keys, or levels outside (0, 1].
    """
    from gkd_bench.spec import SuiteError, parse_seeds

    if cfg is False:
        return {k: [] for k in list(TEST_TIME) + list(TRAIN_TIME)} | {"train_seeds": None}
    if cfg is None or cfg is True:
        cfg = {}
    if not isinstance(cfg, dict):
        raise SuiteError(f"robustness must be a mapping of level lists, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - KEYS)
    if unknown:
        raise SuiteError(f"robustness: unknown key(s) {unknown}; known: {sorted(KEYS)}")
    out = {k: _levels(k, cfg.get(k, DEFAULTS[k])) for k in TEST_TIME}
    out.update({k: _levels(k, cfg.get(k)) for k in TRAIN_TIME})
    ts = cfg.get("train_seeds")
    out["train_seeds"] = parse_seeds(ts) if ts is not None else None
    return out


LATENCY_KEYS = {"batches", "min_run_time", "memory"}


def resolve_latency(cfg) -> dict:
    """A suite's ``latency`` block -> ``{"batches", "min_run_time", "memory"}``.

    ``latency: {batches: [1, 10, 1024], min_run_time: 0.2, memory: true}``
    (these are the defaults): the ``online@B`` batch sizes, the seconds per
    ``blocked_autorange`` and whether peak memory is measured per scenario.

    Raises:
        SuiteError: not a mapping, unknown keys, bad batch sizes or times.
    """
    from gkd_bench.spec import SuiteError
    from gkd_bench.timing import DEFAULT_BATCHES, parse_batches

    cfg = {} if cfg is None else cfg
    if not isinstance(cfg, dict):
        raise SuiteError(f"latency must be a mapping (batches, min_run_time, memory), got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - LATENCY_KEYS)
    if unknown:
        raise SuiteError(f"latency: unknown key(s) {unknown}; known: {sorted(LATENCY_KEYS)}")
    try:
        batches = list(parse_batches(cfg.get("batches", DEFAULT_BATCHES)))
        mrt = float(cfg.get("min_run_time", 0.2))
    except (TypeError, ValueError) as e:
        raise SuiteError(f"latency: {e}") from None
    if not mrt > 0:
        raise SuiteError(f"latency.min_run_time must be > 0 seconds, got {mrt}")
    return {"batches": batches, "min_run_time": mrt, "memory": bool(cfg.get("memory", True))}


def resolve_evaluation(suite: dict) -> dict:
    """``RunSpec.evaluation`` of a (per-dataset effective) suite: ``{"robustness": ..., "latency": ...}``."""
    return {"robustness": resolve_robustness(suite.get("robustness")), "latency": resolve_latency(suite.get("latency"))}


def with_evaluation(specs: list, evaluation: dict) -> list:
    """``specs`` with ``evaluation`` set, each followed by its train-time perturbed copies.

    A copy per train-time level (``perturbation = {"kind", "level"}``) is
    added for seeds in ``train_seeds`` (all seeds when unset); perturbed
    copies of specs that already carry a perturbation are not made.
    """
    import dataclasses

    rob = evaluation.get("robustness") or {}
    perts = train_time_perturbations(rob)
    seeds = rob.get("train_seeds")
    out = []
    for s in specs:
        s = dataclasses.replace(s, evaluation=evaluation)
        out.append(s)
        if s.perturbation is None and (seeds is None or s.seed in seeds):
            search = s.search  # a grid point's perturbed copies run on train_seeds only
            if search and seeds is not None:
                search = {**search, "seeds": [x for x in search["seeds"] if x in seeds]}
            out.extend(dataclasses.replace(s, perturbation=p, search=search) for p in perts)
    return out


def train_time_perturbations(resolved: dict) -> List[dict]:
    """The ``perturbation`` dicts of the train-time runs of a resolved config, in a stable order."""
    return [{"kind": kind, "level": lv} for key, kind in TRAIN_TIME.items() for lv in resolved.get(key, [])]


def perturbation_columns(perturbation: Optional[dict]) -> dict:
    """``perturbation_kind`` (``train_noise`` | ``poison_drop`` | ``poison_add``) and ``perturbation_level``."""
    if not perturbation:
        return {"perturbation_kind": None, "perturbation_level": None}
    return {"perturbation_kind": TRAIN_NAME.get(perturbation["kind"], perturbation["kind"]),
            "perturbation_level": float(perturbation["level"])}


def is_structure_invariant(model) -> bool:
    """True for graph-free models (class attribute ``graph_free = True``), e.g. the MLP student."""
    return bool(getattr(model, "graph_free", False))


def robustness_columns(model, data: GraphData, seed: int, clean: float,
                       evaluate: Callable[[object, GraphData, GraphData], Dict[str, float]],
                       cfg: Optional[dict] = None) -> dict:
    """Test-time robustness of a model trained on clean data.

    For each configured level the data is perturbed with
    :func:`gkd_bench.perturb.apply_perturbation` (seeded by dataset, split,
    kind, level and ``seed``, so every method at this seed sees the same
    perturbed data) and scored with ``evaluate(model, pdata,
    pdata.training_view())["test"]``.

    Args:
        model: the trained model (eval mode is set by ``evaluate``).
        data: the clean data of the run (full graph).
        seed: the run's seed (the perturbation seed is derived from it).
        clean: the clean ``test`` score of the same model, in %.
        evaluate: :func:`gkd_bench.runner.evaluate`.
        cfg: resolved robustness config (:func:`resolve_robustness`);
            ``None`` uses the defaults.

    Returns:
        ``robust_<feat|drop|add>_<level>`` scores in %, ``robust_summary_<...>``
        mean relative scores (NaN when ``clean`` is 0 or NaN) and
        ``structure_invariant``.
    """
    from gkd_bench.perturb import apply_perturbation  # torch: imported here, not by the report

    cfg = resolve_robustness(None) if cfg is None else cfg
    out: dict = {"structure_invariant": is_structure_invariant(model)}
    for key, (short, kind) in TEST_TIME.items():
        rel = []
        for level in cfg.get(key) or []:
            pdata = apply_perturbation(data, {"kind": kind, "level": level}, seed)
            s = evaluate(model, pdata, pdata.training_view())["test"]
            out[f"robust_{short}_{level_name(level)}"] = s
            rel.append(s / clean if clean and clean == clean else float("nan"))
        if rel:
            out[f"robust_summary_{short}"] = sum(rel) / len(rel)
    return out


# ------------------------------------------------------------------ report helpers
def clean_key(spec_json: str) -> str:
    """Identity of a run's configuration without its train-time perturbation (pairs perturbed with clean runs).

    Leaves out the seed, suite, perturbation, evaluation settings and the search tag (a perturbed copy of a
    searched point may carry trimmed search seeds; the searched values themselves stay, in the hparams)."""
    import hashlib
    import json

    d = json.loads(spec_json) if isinstance(spec_json, str) else dict(spec_json)
    for k in ("seed", "suite", "perturbation", "evaluation", "search"):
        d.pop(k, None)
    return hashlib.sha1(json.dumps(d, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:12]


def relative_to_clean(ok):
    """Per run of a DataFrame of ``ok`` records: ``test`` / clean run's ``test`` at the same seed (NaN for clean runs).

    Needs the columns ``spec``, ``seed``, ``test`` and ``perturbation_kind``.
    Adds ``ckey_`` (:func:`clean_key`) to ``ok`` and returns the ratios as a Series.
    """
    import numpy as np
    import pandas as pd

    ok["ckey_"] = ok["spec"].map(clean_key)
    kind = ok["perturbation_kind"] if "perturbation_kind" in ok else pd.Series([None] * len(ok), index=ok.index)
    is_clean = kind.isna()
    clean = ok[is_clean].drop_duplicates(["ckey_", "seed"]).set_index(["ckey_", "seed"])["test"]
    out = []
    for k, s, t, c in zip(ok["ckey_"], ok["seed"], ok["test"], is_clean):
        base = clean.get((k, s), np.nan)
        out.append(np.nan if c or not base else t / base)
    return pd.Series(out, index=ok.index, dtype=float)


def add_train_time_summaries(lb):
    """Leaderboard rows of clean configs get ``robust_summary_<train_noise|poison_drop|poison_add>``.

    Each is the mean over levels of the perturbed config's mean (over seeds)
    of test / clean test paired by seed (column ``robust_rel_clean`` of the
    perturbed rows). Returns ``lb`` (modified).
    """
    if lb.empty or "perturbation_kind" not in lb or "robust_rel_clean" not in lb:
        return lb
    pert = lb[lb["perturbation_kind"].notna()]
    for kind, g in pert.groupby("perturbation_kind"):
        summ = g.groupby("clean_key")["robust_rel_clean"].mean()
        mask = lb["perturbation_kind"].isna()
        lb.loc[mask, f"robust_summary_{kind}"] = lb.loc[mask, "clean_key"].map(summ)
    return lb


def train_time_table(g) -> str:
    """Markdown curve of train-time runs for one (dataset, split, setting) leaderboard group ('' if none).

    Rows: clean configs; columns ``<kind> <level>``: mean test score (%) of
    the config trained and evaluated on the perturbed data.
    """
    import pandas as pd

    if "perturbation_kind" not in g or g["perturbation_kind"].notna().sum() == 0:
        return ""
    clean = g[g["perturbation_kind"].isna()].sort_values("test_mean", ascending=False)
    pert = g[g["perturbation_kind"].notna()]
    rows = []
    for _, r in clean.iterrows():
        row = {"teacher": r["teacher"], "student": r["student"], "distiller": r["distiller"],
               "clean": f"{r['test_mean']:.2f}"}
        mine = pert[pert["clean_key"] == r["clean_key"]]
        for _, p in mine.sort_values(["perturbation_kind", "perturbation_level"]).iterrows():
            row[f"{p['perturbation_kind']} {level_name(p['perturbation_level'])}"] = f"{p['test_mean']:.2f}"
        if len(mine):
            rows.append(row)
    if not rows:
        return ""
    return ("Train-time perturbation (trained and evaluated on perturbed data), mean test score:\n\n"
            + pd.DataFrame(rows).fillna("").to_markdown(index=False) + "\n")
