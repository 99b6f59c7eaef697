"""RunSpec and suite expansion (DESIGN.md concept 5 and "Configuration").

A suite is a YAML file::

    name: default
    seeds: 0-9                     # "0-9", "0,3,5", an int or a list
    settings: [transductive]       # and/or inductive
    datasets:                      # name -> loader options (protocol, inductive_fraction, ...)
      cora: {protocol: planetoid}
      cora-cpf: {dataset: cora, protocol: cpf, settings: [inductive]}  # entry label -> registry name;
                                   # per-entry settings (``overrides`` are keyed by the entry label)
    train: {epochs: 500, lr: 0.01} # gkd_bench.fit.TrainConfig fields
    models:                        # label -> {model: registry key, train: {...}, **hyperparameters}
      gcn: {model: gcn, hidden: 64}
    distillers:                    # label -> {distiller: registry key, train: {...}, **hyperparameters}
      kd: {lam: 0.5}
    experiments:                   # teacher x student x distiller grids (labels)
      - {student: [gcn, mlp], distiller: none}
      - {teacher: gcn, student: mlp, distiller: kd}
    overrides:                     # per-dataset deep-merged patches of the keys above
      citeseer: {models: {mlp: {dropout: 0.1}}}

A model or distiller entry may carry ``search: {param: [v1, v2, ...], ...}``:
the entry expands into one ordinary configuration per point of the Cartesian
grid (see :func:`entry_points`). ``search`` works inside ``overrides`` and
through ``--set distillers.kd.search.lam=[0.8,0.9]``; ``search: null`` (or
``{}``) turns a search off. A model used as a teacher may not carry a search.

An experiment may add ``distillers: {label: {...}}``: settings merged over the
suite's entries of those labels for that experiment's runs only (same labels).

Precedence: factory defaults < suite < ``overrides[dataset]`` < an
experiment's ``distillers`` < ``--set key=value``. Unknown keys are errors. Every hyperparameter is resolved
(factory defaults filled in) and stored in the spec, so ``config_id`` changes
whenever anything that affects training changes.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import yaml

from gkd_bench.fit import TrainConfig
from gkd_bench.registry import DATASETS, DISTILLERS, MODELS
from gkd_bench.robustness import resolve_evaluation, with_evaluation
from gkd_bench.search import grid_points, point_label  # noqa: F401 (re-exported)

SUITE_KEYS = {"name", "description", "seeds", "settings", "datasets", "train", "models", "distillers",
              "experiments", "overrides", "perturbations", "compare", "robustness", "latency"}
DATASET_KEYS = {"protocol", "inductive_fraction", "options", "dataset", "settings"}
MODEL_ARGS_FROM_DATA = ("in_dim", "num_classes")


class SuiteError(ValueError):
    """A suite file or an option is malformed; the message names the file, line or key."""


def canonical(obj) -> str:
    """Stable JSON (sorted keys, no spaces) used for hashing and for the ``hparams`` column."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(spec: dict) -> str:
    """The 12-hex-digit configuration id of a run spec dict (:meth:`RunSpec.to_dict`, or a record's parsed
    ``spec``): SHA-1 of its canonical JSON without ``seed``, ``suite``, ``evaluation`` and ``search``, so the
    same configuration has the same id in every suite, whatever is measured after training or searched."""
    d = {k: v for k, v in spec.items() if k not in ("seed", "suite", "evaluation", "search")}
    return hashlib.sha1(canonical(d).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one run. ``config_id`` hashes all of it but ``seed`` and ``suite``."""

    suite: str
    dataset: str
    protocol: str
    setting: str
    student: dict                     # {label, model, hparams, train}
    distiller: dict                   # {label, name, hparams}
    seed: int
    teacher: Optional[dict] = None    # {label, model, hparams, train} or None
    dataset_options: dict = field(default_factory=dict)
    perturbation: Optional[dict] = None
    # test-time robustness levels and latency settings (gkd_bench.robustness.resolve_evaluation);
    # they change what is measured, not what is trained, so config_id leaves them out
    evaluation: dict = field(default_factory=dict)
    # hyperparameter search this run is a grid point of (:func:`search_info`): group, point label, grid,
    # index, seeds; it names the point, it does not define it (the resolved hparams do), so config_id leaves
    # it out and a grid point equal to a fixed configuration shares its config_id and records
    search: Optional[dict] = None

    def to_dict(self) -> dict:
        """The spec as a plain dict (``search`` only when set, so a fixed run's dict is as before)."""
        d = dataclasses.asdict(self)
        if d.get("search") is None:
            d.pop("search", None)
        return d

    @property
    def config_id(self) -> str:
        """12 hex digits of :func:`config_hash`: the configuration without seed, suite, evaluation and search."""
        return config_hash(self.to_dict())

    @property
    def run_id(self) -> str:
        """``<config_id>-s<seed>``: the record's file name and the key ``run`` resumes by."""
        return f"{self.config_id}-s{self.seed}"

    def teacher_run(self) -> "RunSpec":
        """The spec that trains this run's teacher alone (distiller ``none``); its run id keys the teacher cache."""
        if self.teacher is None:
            raise ValueError("this run has no teacher")
        return dataclasses.replace(self, student=self.teacher, teacher=None, search=None,
                                   distiller={"label": "none", "name": "none", "hparams": {}})

    @property
    def hparams_json(self) -> str:
        """Resolved hyperparameters of student, distiller and training, as sorted JSON."""
        return canonical({"student": self.student["hparams"], "distiller": self.distiller["hparams"],
                          "train": self.student["train"], "dataset": self.dataset_options})


def parse_seeds(value) -> List[int]:
    """``"0-9"`` -> 0..9; ``"1,3"`` -> [1, 3]; int or list accepted. Raises SuiteError otherwise."""
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    out: List[int] = []
    try:
        for part in str(value).split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                if int(b) < int(a):
                    raise ValueError
                out.extend(range(int(a), int(b) + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise SuiteError(f"cannot parse seeds {value!r}; use e.g. 0-9 or 0,1,2") from None
    return out


def suite_path(name_or_path: str) -> Path:
    """A suite shipped with the package by name, or a YAML file path. Raises SuiteError if absent."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise SuiteError(f"suite file {p} does not exist")
        return p
    shipped = resources.files("gkd_bench") / "suites" / f"{name_or_path}.yaml"
    if not shipped.is_file():
        names = ", ".join(list_suites())
        raise SuiteError(f"unknown suite {name_or_path!r}; shipped suites: {names}")
    return Path(str(shipped))


def list_suites() -> List[str]:
    """Names of the suites shipped in ``gkd_bench/suites`` (``<name>.yaml``), sorted."""
    folder = resources.files("gkd_bench") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_suite(name_or_path: str) -> dict:
    """Read a suite with ``yaml.safe_load``.

    Raises:
        SuiteError: malformed YAML (with file and line), a non-mapping
            document, or unknown top-level keys.
    """
    path = suite_path(name_or_path)
    try:
        suite = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise SuiteError(f"malformed suite file {where}: {problem}") from None
    if not isinstance(suite, dict):
        raise SuiteError(f"suite file {path} must be a mapping, got {type(suite).__name__}")
    unknown = sorted(set(suite) - SUITE_KEYS)
    if unknown:
        raise SuiteError(f"suite file {path}: unknown key(s) {unknown}; known: {sorted(SUITE_KEYS)}")
    suite.setdefault("name", path.stem)
    return suite


def deep_merge(base: dict, patch: dict) -> dict:
    """A copy of ``base`` with ``patch`` merged in recursively: nested mappings merge key by key, any other
    value of ``patch`` replaces the one in ``base``. Neither argument is modified."""
    out = copy.deepcopy(base)
    for k, v in (patch or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_sets(suite: dict, sets: Sequence[str]) -> dict:
    """Apply ``key.path=value`` assignments (values parsed as YAML). Raises SuiteError on bad syntax/keys."""
    out = copy.deepcopy(suite)
    for item in sets:
        if "=" not in item:
            raise SuiteError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if parts[0] not in SUITE_KEYS:
            raise SuiteError(f"--set {key}: unknown top-level key {parts[0]!r}; known: {sorted(SUITE_KEYS)}")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise SuiteError(f"--set {key}: {p!r} is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw)
    return out


#: attribute of a factory (function or class) naming hyperparameters added after records of it existed:
#: while such a parameter is at its default (the behaviour those records had), it is left out of the
#: resolved hyperparameters, so config ids, and the records keyed by them, stay as they were
ID_NEUTRAL_ATTR = "id_neutral_defaults"


def resolve_kwargs(factory, given: dict, kind: str, name: str, skip=()) -> dict:
    """Factory defaults overlaid with ``given``; unknown keys raise SuiteError naming the known ones.

    Parameters the factory lists in its ``id_neutral_defaults`` attribute (:data:`ID_NEUTRAL_ATTR`) are
    left out while they equal their default, given or not; the factory then receives that default."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    params = {k: p for k, p in sig.parameters.items() if k not in ("self",) + tuple(skip)
              and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise SuiteError(f"{kind} {name!r}: unknown hyperparameter(s) {unknown}; known: {sorted(params)}")
    out = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    out.update(given)
    for k in getattr(factory, ID_NEUTRAL_ATTR, ()):
        if k in out and k in params and out[k] == params[k].default:
            del out[k]
    return out


def resolve_model(label: str, entry: Optional[dict], train: dict) -> dict:
    """A suite model entry -> ``{label, model, hparams, train}`` with every value resolved."""
    entry = dict(entry or {})
    key = entry.pop("model", label)
    factory = MODELS.get(key)
    try:
        tcfg = TrainConfig.from_dict(deep_merge(train, entry.pop("train", {}) or {}))
    except ValueError as e:
        raise SuiteError(f"model {label!r}: {e}") from None
    hp = resolve_kwargs(factory, entry, "model", label, skip=MODEL_ARGS_FROM_DATA)
    return {"label": label, "model": key, "hparams": hp, "train": tcfg.to_dict()}


def resolve_distiller(label: str, entry: Optional[dict]) -> tuple:
    """A suite distiller entry -> (``{label, name, hparams}``, train patch, class)."""
    entry = dict(entry or {})
    key = entry.pop("distiller", label)
    cls = DISTILLERS.get(key)
    tpatch = entry.pop("train", {}) or {}
    return {"label": label, "name": key, "hparams": resolve_kwargs(cls, entry, "distiller", label)}, tpatch, cls


SEARCH_KEY = "search"
# inside ``search``: the seeds the grid is tuned on (two-stage search, :mod:`gkd_bench.search`); reserved,
# so a hyperparameter named ``seeds`` cannot be searched
SEARCH_SEEDS_KEY = "seeds"
RESERVED_KEYS = {"model", "distiller", "train", SEARCH_KEY, SEARCH_SEEDS_KEY}


def _factory_params(factory, skip=()) -> List[str]:
    """Keyword hyperparameters of a model factory or distiller class (what :func:`resolve_kwargs` accepts)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    return [k for k, p in inspect.signature(target).parameters.items() if k not in ("self",) + tuple(skip)
            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def parse_search(kind: str, label: str, entry: Optional[dict]) -> Optional[Dict[str, list]]:
    """Validate an entry's ``search`` and return its grid ``{param: [values]}`` (params sorted by name).

    Args:
        kind: ``"model"`` or ``"distiller"`` (which registry the entry's key is looked up in).
        label: the entry's label in the suite (named in errors).
        entry: the suite entry, e.g. ``{"distiller": "kd", "T": 4.0, "search": {"lam": [0.8, 0.9]}}``.

    Returns:
        ``None`` when the entry has no search (absent, ``null`` or ``{}``), else the grid. A param is a
        hyperparameter of the factory or ``train.<field>`` (a :class:`~gkd_bench.fit.TrainConfig` field).

    Raises:
        SuiteError: ``search`` is not a mapping, a key is not a known hyperparameter (or a reserved key such
            as ``model``), a value is not a list, a list is empty or repeats a value; the message names the
            entry and the key.
        UnknownNameError: the entry's model or distiller key is not registered.
    """
    raw = (entry or {}).get(SEARCH_KEY)
    if raw is None or raw == {}:
        return None
    where = f"{kind} {label!r}"
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: search must be a mapping of parameter -> list of values, "
                         f"got {type(raw).__name__} {raw!r}")
    if kind == "model":
        known = _factory_params(MODELS.get(entry.get("model", label)), MODEL_ARGS_FROM_DATA)
    else:
        known = _factory_params(DISTILLERS.get(entry.get("distiller", label)))
    train_fields = sorted(f.name for f in dataclasses.fields(TrainConfig))
    grid = {}
    for key in sorted(raw, key=str):
        values = raw[key]
        if key == SEARCH_SEEDS_KEY:  # validated by parse_search_seeds
            continue
        if not isinstance(key, str):
            raise SuiteError(f"{where}: search key {key!r} must be a parameter name")
        if key.startswith("train."):
            if key[len("train."):] not in train_fields:
                raise SuiteError(f"{where}: search key {key!r} is not a train option; "
                                 f"known: {['train.' + f for f in train_fields]}")
        elif key in RESERVED_KEYS or key not in known:
            raise SuiteError(f"{where}: search key {key!r} is not a hyperparameter of this {kind}; "
                             f"known: {sorted(known)} and train.<option>")
        if not isinstance(values, list):
            raise SuiteError(f"{where}: search key {key!r} must be a list of values, got {values!r}")
        if not values:
            raise SuiteError(f"{where}: search key {key!r} has an empty list of values")
        if len({canonical(v) for v in values}) < len(values):
            raise SuiteError(f"{where}: search key {key!r} repeats a value in {values!r}")
        grid[key] = list(values)
    if not grid:
        raise SuiteError(f"{where}: search has {SEARCH_SEEDS_KEY!r} but no parameter to search")
    return grid


def parse_search_seeds(kind: str, label: str, entry: Optional[dict], suite_seeds: Sequence[int]) -> Optional[List[int]]:
    """The search seeds of an entry's ``search`` (``search: {lam: [...], seeds: 0-2}``), sorted, or ``None``.

    With search seeds the grid is tuned in two stages (:mod:`gkd_bench.search`): every grid point runs on
    the search seeds, then the point selected on their validation scores runs on the suite's other seeds.

    Raises:
        SuiteError: the seeds cannot be parsed, are empty, repeat a seed or are not a subset of the
            suite's ``seeds`` (``suite_seeds``); the message names the entry.
    """
    raw = (entry or {}).get(SEARCH_KEY)
    if not isinstance(raw, dict) or raw.get(SEARCH_SEEDS_KEY) is None:
        return None
    where = f"{kind} {label!r}"
    value = raw[SEARCH_SEEDS_KEY]
    try:
        if isinstance(value, bool) or (isinstance(value, (list, tuple)) and
                                       any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
            raise SuiteError(f"not a seed list: {value!r}")
        seeds = parse_seeds(value)
    except (SuiteError, ValueError, TypeError) as e:
        raise SuiteError(f"{where}: search {SEARCH_SEEDS_KEY!r}: {e}") from None
    if not seeds:
        raise SuiteError(f"{where}: search {SEARCH_SEEDS_KEY!r} is empty")
    if len(set(seeds)) < len(seeds):
        raise SuiteError(f"{where}: search {SEARCH_SEEDS_KEY!r} repeats a seed in {value!r}")
    outside = sorted(set(seeds) - set(suite_seeds))
    if outside:
        raise SuiteError(f"{where}: search {SEARCH_SEEDS_KEY!r} {value!r} must be a subset of the suite's "
                         f"seeds {sorted(set(suite_seeds))}; not in them: {outside}")
    return sorted(seeds)


def entry_points(kind: str, label: str, entry: Optional[dict]) -> tuple:
    """An entry -> ``(grid, [(entry_for_point, point), ...])``.

    Without a search: ``(None, [(entry, None)])`` with the entry unchanged (a ``search: null`` key
    removed), so fixed entries resolve exactly as before. With one: one entry per grid point, the point's
    values set on a copy of the entry (``train.lr`` sets ``entry["train"]["lr"]``). Raises as
    :func:`parse_search`.
    """
    grid = parse_search(kind, label, entry)
    if entry is not None and SEARCH_KEY in entry:
        entry = {k: v for k, v in entry.items() if k != SEARCH_KEY}
    if grid is None:
        return None, [(entry, None)]
    out = []
    for point in grid_points(grid):
        e = copy.deepcopy(entry)
        for key, value in point.items():
            if key.startswith("train."):
                e["train"] = {**(e.get("train") or {}), key[len("train."):]: copy.deepcopy(value)}
            else:
                e[key] = copy.deepcopy(value)
        out.append((e, point))
    return grid, out


def search_info(parts: Sequence[tuple], seeds: Sequence[int],
                search_seeds: Optional[Sequence[int]] = None) -> Optional[dict]:
    """``RunSpec.search`` of one run from its searched entries.

    Args:
        parts: ``(role, label, grid, index, point)`` per searched entry, student first, then distiller
            (both may be searched: the group's grid is then their product, the student's index slowest).
        seeds: the seeds the suite runs (the report marks a selection provisional while any is missing).
        search_seeds: the seeds the grid is tuned on (two-stage search), ``None`` for every seed.

    Returns:
        ``None`` when nothing is searched, else ``{group, label, index, size, grid, params, seeds}``
        (plus ``tune_seeds``, the search seeds, for a two-stage search):
        group = searched entry labels joined by ``+`` (``kd``), label = the point's readable label
        (``kd[T=4,lam=0.8]``), index = position in the grid (0-based), size = number of grid points,
        grid / params = ``{role: {param: values}}`` / ``{role: {param: value}}``.
    """
    parts = [p for p in parts if p[2] is not None]
    if not parts:
        return None
    index, size = 0, 1
    for _, _, grid, i, _ in parts:
        n = len(grid_points(grid))
        index, size = index * n + i, size * n
    out = {"group": "+".join(p[1] for p in parts),
           "label": "+".join(point_label(label, point) for _, label, _, _, point in parts),
           "index": index, "size": size, "grid": {role: grid for role, _, grid, _, _ in parts},
           "params": {role: point for role, _, _, _, point in parts}, "seeds": sorted(set(seeds))}
    if search_seeds is not None:
        out["tune_seeds"] = sorted(set(search_seeds))
    return out


def _as_list(v) -> list:
    if v is None:
        return [None]
    return list(v) if isinstance(v, (list, tuple)) else [v]


def expand(suite: dict, *, datasets: Optional[Iterable[str]] = None, teachers=None, students=None,
           distillers=None, seeds=None, settings=None, sets: Sequence[str] = (),
           all_seeds: bool = False) -> List[RunSpec]:
    """Expand a suite into RunSpecs, validating every name before anything trains.

    A two-stage search (``search: {..., seeds: 0-2}``) contributes its stage-1 runs only: every grid point
    on the search seeds (within ``seeds``). ``all_seeds=True`` returns every grid point on every seed (and
    its train-time perturbed copies) instead: :func:`gkd_bench.search.stage2_specs` picks the stage-2 runs
    from that list once the records of stage 1 decide the selection.

    Filters narrow the suite; a filter naming a registry entry that the suite
    does not define adds it with factory defaults (ad hoc runs, e.g.
    ``--dataset chameleon --student mlp --distiller none``).

    Raises:
        UnknownNameError: a dataset, model or distiller name no registry has.
        SuiteError: malformed entries, unknown hyperparameters, a teacher-less
            distiller given a teacher or vice versa, or nothing left to run.
    """
    name = suite.get("name", "suite")
    ds_cfg = dict(suite.get("datasets") or {})
    if datasets:
        picked = {}
        for d in datasets:  # an entry label, or a registry name matching entries' ``dataset``
            hits = {k: v for k, v in ds_cfg.items() if k == d or (v or {}).get("dataset") == d}
            if not hits:
                DATASETS.get(d)
            picked.update(hits or {d: {}})
        ds_cfg = picked
    seed_list = parse_seeds(seeds if seeds is not None else suite.get("seeds", 0))
    suite_seeds = parse_seeds(suite.get("seeds", 0))
    specs: List[RunSpec] = []
    no_teacher: List[str] = []
    for ds_name, ds_opts in ds_cfg.items():
        DATASETS.get((ds_opts or {}).get("dataset", ds_name))
        eff = apply_sets(deep_merge(suite, (suite.get("overrides") or {}).get(ds_name, {})), sets)
        ds_opts = deep_merge(ds_opts or {}, (eff.get("datasets") or {}).get(ds_name) or {})
        unknown = sorted(set(ds_opts) - DATASET_KEYS)
        if unknown:
            raise SuiteError(f"dataset {ds_name!r}: unknown option(s) {unknown}; known: {sorted(DATASET_KEYS)}")
        options = dict(ds_opts.get("options") or {})
        ds_key = ds_opts.get("dataset", ds_name)
        # no protocol given: the loader's default (``default_protocol`` attribute; the loader also
        # picks it when called with protocol=None), so the spec and its record name the real one
        protocol = ds_opts.get("protocol") or getattr(DATASETS.get(ds_key), "default_protocol", None)
        ds_settings = list(ds_opts.get("settings") or suite.get("settings") or ["transductive"])
        if settings:
            ds_settings = [s for s in settings if s in ds_settings] if ds_opts.get("settings") else list(settings)
        train = eff.get("train") or {}
        models = dict(eff.get("models") or {})
        dists = dict(eff.get("distillers") or {})
        exps = list(eff.get("experiments") or [])
        evaluation, n_before = resolve_evaluation(eff), len(specs)
        if students or teachers or distillers:
            for label in list(students or []) + list(teachers or []):
                if label not in models:
                    MODELS.get(label)
                    models[label] = {"model": label}
            for label in distillers or []:
                if label not in dists:
                    DISTILLERS.get(label)
                    dists[label] = {}
            matched = [e for e in exps if _exp_matches(e, teachers, students, distillers)]
            if not matched and students and distillers:
                needy = [d for d in distillers if DISTILLERS.get((dists.get(d) or {}).get("distiller", d)).needs_teacher]
                if needy and not teachers:
                    # an ad hoc run of a distiller that needs a teacher: this dataset's experiments name
                    # none for these students, so those distillers are left out here (an error only if
                    # no dataset has runs); the others still run ad hoc
                    no_teacher.append(f"{ds_name}: distiller(s) {needy} need a teacher (--teacher)")
                    rest = [d for d in distillers if d not in needy]
                    exps = [{"teacher": None, "student": list(students), "distiller": rest}] if rest else []
                else:
                    exps = [{"teacher": list(teachers) if teachers else None, "student": list(students),
                             "distiller": list(distillers)}]
        for i, exp in enumerate(exps):  # a teacher is one fixed configuration: every student sees the same
            for t_label in _as_list(exp.get("teacher")) if isinstance(exp, dict) else []:
                if t_label is not None and (models.get(t_label) or {}).get(SEARCH_KEY) not in (None, {}):
                    raise SuiteError(
                        f"suite {name!r}: model {t_label!r} is a teacher (experiment {i}) and has a search; a "
                        f"teacher must be one fixed configuration (searching it would change the teacher every "
                        f"student sees): give the teacher its own entry without search")
        for i, exp in enumerate(exps):
            if not isinstance(exp, dict) or not {"student", "distiller"} <= set(exp):
                raise SuiteError(f"suite {name!r}: experiment {i} needs 'student' and 'distiller'")
            exp_dists = _experiment_distillers(name, i, exp, dists, sets)
            for d_label in _as_list(exp["distiller"]):
                if distillers and d_label not in distillers:
                    continue
                d_grid, d_points = entry_points("distiller", d_label, exp_dists.get(d_label))
                d_seeds = parse_search_seeds("distiller", d_label, exp_dists.get(d_label), suite_seeds)
                for d_index, (d_entry, d_point) in enumerate(d_points):
                    _expand_distiller_point(
                        specs, name, i, exp, d_label, d_entry, (d_grid, d_index, d_point), models, train,
                        teachers, students, ds_settings, seed_list, ds_key, protocol, options, ds_opts,
                        suite_seeds, d_seeds)
        specs[n_before:] = with_evaluation(specs[n_before:], evaluation)
    if not specs:
        raise SuiteError(f"suite {name!r}: nothing to run after the filters"
                         + (f" ({'; '.join(no_teacher)})" if no_teacher else ""))
    seen = {}
    for s in specs:
        seen.setdefault(s.run_id, s)
    out = list(seen.values())
    if not all_seeds:
        from gkd_bench.search import is_stage2

        out = [s for s in out if not is_stage2(s)]
    return out


def _expand_distiller_point(specs, name, i, exp, d_label, d_entry, d_search, models, train, teachers, students,
                            ds_settings, seed_list, ds_key, protocol, options, ds_opts, suite_seeds=(),
                            d_seeds=None) -> None:
    """Append to ``specs`` the runs of experiment ``i`` for one (grid point of a) distiller entry."""
    d_spec, tpatch, cls = resolve_distiller(d_label, d_entry)
    t_labels = _as_list(exp.get("teacher"))
    if not cls.needs_teacher:
        t_labels = [None]
    elif t_labels == [None]:
        raise SuiteError(f"suite {name!r}: distiller {d_label!r} needs a teacher (experiment {i})")
    for t_label in t_labels:
        if teachers and t_label is not None and t_label not in teachers:
            continue
        if teachers and t_label is None and cls.needs_teacher:
            continue
        t_spec = None
        if t_label is not None:
            if t_label not in models:
                MODELS.get(t_label)
            t_entry = models.get(t_label, {"model": t_label})
            t_spec = resolve_model(t_label, entry_points("model", t_label, t_entry)[1][0][0], train)
        for s_label in _as_list(exp["student"]):
            if students and s_label not in students:
                continue
            if s_label not in models:
                MODELS.get(s_label)
            s_grid, s_points = entry_points("model", s_label, models.get(s_label) or {"model": s_label})
            s_seeds = parse_search_seeds("model", s_label, models.get(s_label), suite_seeds)
            if s_seeds is not None and d_seeds is not None and s_seeds != d_seeds:
                raise SuiteError(f"suite {name!r}: model {s_label!r} and distiller {d_label!r} are searched "
                                 f"together with different search seeds {s_seeds} and {d_seeds}; give both "
                                 f"the same seeds (or one of them none)")
            tune_seeds = s_seeds if s_seeds is not None else d_seeds
            for s_index, (s_entry, s_point) in enumerate(s_points):
                s_entry = deep_merge(s_entry, {})
                s_entry["train"] = deep_merge(s_entry.get("train") or {}, tpatch)
                s_spec = resolve_model(s_label, s_entry, train)
                search = search_info([("student", s_label, s_grid, s_index, s_point),
                                      ("distiller", d_label, *d_search)], seed_list, tune_seeds)
                for setting in ds_settings:
                    for seed in seed_list:
                        specs.append(RunSpec(suite=name, dataset=ds_key, protocol=protocol,
                                             setting=setting, student=s_spec, distiller=d_spec,
                                             seed=seed, teacher=t_spec,
                                             dataset_options={**options, **(
                                                 {"inductive_fraction": ds_opts.get("inductive_fraction", 0.2)}
                                                 if setting == "inductive" else {})},
                                             search=search))


#: keys of an ``experiments`` entry
EXPERIMENT_KEYS = {"teacher", "student", "distiller", "distillers"}


def _experiment_distillers(name: str, i: int, exp: dict, dists: dict, sets: Sequence[str] = ()) -> dict:
    """The suite's ``distillers`` entries as experiment ``i`` sees them: its own ``distillers:`` mapping,
    if any, deep-merged over them (a grid given there replaces the suite's grid of that hyperparameter),
    then the ``--set distillers.*`` assignments again, so that ``--set`` keeps the last word. The
    leaderboard label stays the entry's name, so the same method can carry other settings for some
    students (G-CRD's SIGN scripts, say).

    Raises:
        SuiteError: an unknown experiment key, a ``distillers`` value that is not a mapping of mappings,
            or an override of a distiller the experiment does not list."""
    unknown = sorted(set(exp) - EXPERIMENT_KEYS)
    if unknown:
        raise SuiteError(f"suite {name!r}: experiment {i}: unknown key(s) {unknown}; known: {sorted(EXPERIMENT_KEYS)}")
    own = exp.get("distillers")
    if not own:
        return dists
    if not isinstance(own, dict) or not all(isinstance(v, dict) for v in own.values()):
        raise SuiteError(f"suite {name!r}: experiment {i}: 'distillers' must map distiller labels to their "
                         f"settings, got {own!r}")
    listed = set(_as_list(exp["distiller"]))
    stray = sorted(set(own) - listed)
    if stray:
        raise SuiteError(f"suite {name!r}: experiment {i}: 'distillers' overrides {stray}, which the experiment "
                         f"does not run (its distillers: {sorted(listed)})")
    merged = deep_merge(dists, own)
    mine = [s for s in sets if "=" in s and s.split("=", 1)[0].strip().startswith("distillers.")]
    return apply_sets({"distillers": merged}, mine)["distillers"] if mine else merged


def _exp_matches(exp, teachers, students, distillers) -> bool:
    def ok(values, allowed):
        return not allowed or any(v in allowed for v in _as_list(values))

    return ok(exp.get("student"), students) and ok(exp.get("distiller"), distillers) and (
        not teachers or ok(exp.get("teacher"), teachers))
