"""Executes RunSpecs: data, teacher cache, student training, evaluation, records.

DESIGN.md "Flow of one run". A run whose record exists with status ``ok`` is
skipped unless ``rerun``; every finished run is written atomically before
the next starts, so an interrupted sweep loses at most the run in flight.
Failures become records (``error``, ``oom``, ``timeout``; ``skipped`` when a
dataset's files are missing) unless ``fail_fast``.
"""
from __future__ import annotations

import collections
import datetime as _dt
import functools
import random
import traceback
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

from gkd_bench.data import GraphData, MissingDataError, ModelOutput
from gkd_bench.analysis import analysis_columns
from gkd_bench.datasets._io import cache_root, data_root
from gkd_bench.datasets.settings import apply_setting
from gkd_bench.env import environment, git_sha, weights_sha
from gkd_bench.fit import FitResult, TrainConfig, eval_batch_size, fit, predict, predict_graphs, split_score
from gkd_bench.metrics import score
from gkd_bench.methods._common import count_parameters
from gkd_bench.methods._distiller import StudentEnsemble
from gkd_bench.records import atomic_replace, ensure_writable, is_done, read_record, record_path, write_record
from gkd_bench.registry import DATASETS, DISTILLERS, MODELS
from gkd_bench.spec import RunSpec, canonical
from gkd_bench.perturb import apply_perturbation
from gkd_bench.search import search_columns
from gkd_bench.robustness import perturbation_columns, resolve_latency, resolve_robustness, robustness_columns
from gkd_bench.timing import latency_columns, model_signature


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, PyTorch and DGL."""
    import dgl

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    dgl.seed(seed)


def execution_order(specs: List[RunSpec]) -> List[RunSpec]:
    """``specs`` grouped by (suite, dataset, protocol, setting) in order of first appearance, then by seed;
    within a group and seed the suite's order is kept (a teacher's own run before the runs it teaches).

    A suite expands configuration by configuration, each over its seeds; running seed by seed instead
    lets consecutive runs share the loaded split (:meth:`Runner.load_data` keeps the last few), and a
    partial sweep leaves every configuration with the same seeds. The order of execution does not
    change any record.
    """
    groups: Dict[tuple, int] = {}
    for s in specs:
        groups.setdefault((s.suite, s.dataset, s.protocol, s.setting), len(groups))
    return sorted(specs, key=lambda s: (groups[(s.suite, s.dataset, s.protocol, s.setting)], s.seed))


def build_model(mspec: dict, data: GraphData) -> torch.nn.Module:
    """Instantiate a model spec ``{model, hparams}`` for ``data``'s feature and class counts.

    Models that read node ids (``sa_mlp``) are bound to ``data`` here, before
    any optimiser exists: full node count and, inductive, the observed ids. With the train
    option ``label_inputs`` the model takes ``F + C`` inputs and is wrapped in
    :class:`~gkd_bench.label_reuse.LabelReuse`, bound to ``data``'s training labels.

    Raises:
        ValueError: ``label_inputs`` on a dataset it does not apply to (named).
    """
    cfg = TrainConfig.from_dict(mspec.get("train"))
    extra = data.num_classes if cfg.label_inputs else 0
    model = MODELS.get(mspec["model"])(in_dim=data.num_features + extra, num_classes=data.num_classes,
                                       **mspec["hparams"])
    if cfg.label_inputs:
        from gkd_bench.label_reuse import LabelReuse

        model = LabelReuse(model, data.num_classes, cfg.label_mask_rate, cfg.label_iters)
    if hasattr(model, "bind_data"):
        model.bind_data(data)
    return model


def evaluate(model: torch.nn.Module, data: GraphData, view: GraphData,
             batch_size: Optional[int] = None) -> Dict[str, float]:
    """Scores (in %) on validation and test.

    Transductive: ``val``, ``test`` on the full graph. Inductive: ``val`` and
    ``test_tran`` on the observed graph (``view``), ``test_ind`` on the full
    graph, and ``test`` = ``test_prod``, their node-weighted mix (GLNN).
    ``batch_size``: bounded-memory inference of mini-batch runs
    (:func:`gkd_bench.fit.predict`); ``None``: full forward passes.
    """
    m = data.metric
    if data.graphs:  # multi-graph (PPI): every node of the val / test graphs, pooled
        return {"val": split_score(model, data, "val"), "test": split_score(model, data, "test")}
    if data.setting != "inductive":
        out = predict(model, data.graph, data.x, batch_size, keep_hidden=False).logits
        return {"val": score(m, out[data.splits["val"]], data.y[data.splits["val"]]),
                "test": score(m, out[data.splits["test"]], data.y[data.splits["test"]])}
    obs = predict(model, view.graph, view.x, batch_size, keep_hidden=False).logits
    full = predict(model, data.graph, data.x, batch_size, keep_hidden=False).logits
    res = {"val": score(m, obs[view.splits["val"]], view.y[view.splits["val"]]),
           "test_tran": score(m, obs[view.splits["test_tran"]], view.y[view.splits["test_tran"]]),
           "test_ind": score(m, full[data.splits["test_ind"]], data.y[data.splits["test_ind"]])}
    n_t, n_i = len(view.splits["test_tran"]), len(data.splits["test_ind"])
    res["test_prod"] = (n_t * res["test_tran"] + n_i * res["test_ind"]) / max(n_t + n_i, 1)
    res["test"] = res["test_prod"]
    return res


def evaluate_online(students: StudentEnsemble, data: GraphData, view: GraphData) -> Dict[str, float]:
    """Scores (in %) of an online distiller's K students and of their ensemble.

    Every key of :func:`evaluate` (``val``, ``test``, ...) is the mean over
    the students; ``val_s<k>``/``test_s<k>`` are student k's;
    ``test_best_student`` is the test score of the student with the best
    validation score (the first on ties; ``best_student`` its index);
    ``test_min_student``/``test_max_student`` the worst/best student's test
    score; ``val_ensemble``/``test_ensemble`` the ensemble's (mean logits);
    ``num_students`` is K.
    """
    per = [evaluate(m, data, view) for m in students]
    res = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
    for i, p in enumerate(per):
        res[f"val_s{i}"], res[f"test_s{i}"] = p["val"], p["test"]
    best = max(range(len(per)), key=lambda i: (per[i]["val"], -i))
    tests = [p["test"] for p in per]
    ens = evaluate(students, data, view)
    res.update(best_student=best, test_best_student=per[best]["test"], test_min_student=min(tests),
               test_max_student=max(tests), val_ensemble=ens["val"], test_ensemble=ens["test"],
               num_students=len(per))
    return res


class Runner:
    """Runs specs and writes one record per run.

    Args:
        results_dir: where ``runs/<suite>/<run_id>.json`` records go.
        data_root: dataset root (``None``: ``$GKD_BENCH_DATA`` or the default).
        cache_dir: processed-data and teacher cache (``None``: ``$GKD_BENCH_CACHE`` or default).
        rerun: run even when an ``ok`` record exists.
        fail_fast: raise on the first failure instead of recording it.
        timing: measure inference latency (a few seconds per new teacher/student combination, reused
            within the process: :meth:`latency`).
        device: ``cpu`` (or ``cuda``: Ray tasks then reserve one GPU each).
    """

    executor = "local"  # provenance column of the records; "ray" inside Ray tasks (gkd_bench.executors)

    def __init__(self, results_dir, data_root=None, cache_dir=None, rerun: bool = False,
                 fail_fast: bool = False, timing: bool = True, device: str = "cpu"):
        self.results_dir = Path(results_dir)
        self.data_root = data_root
        self.cache_dir = cache_root(cache_dir)
        self.rerun, self.fail_fast, self.timing, self.device = rerun, fail_fast, timing, device
        self._data: "collections.OrderedDict[str, GraphData]" = collections.OrderedDict()
        self._missing: Dict[str, str] = {}
        # latency columns measured in this process: key -> (columns, run_id that measured them)
        self._latency: Dict[str, Tuple[dict, str]] = {}

    # ---------------------------------------------------------------- data
    def load_data(self, spec: RunSpec) -> GraphData:
        """The dataset of ``spec`` under its protocol, setting (transductive / inductive) and perturbation.

        Kept in a small LRU (4 entries) keyed by dataset, protocol, setting, seed, options and
        perturbation, so the runs of one seed share one load.

        Raises:
            MissingDataError: the dataset's files are not in the data root (remembered per dataset).
            UnknownNameError: the dataset is not registered.
        """
        key = canonical([spec.dataset, spec.protocol, spec.setting, spec.seed, spec.dataset_options,
                         spec.perturbation])
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        if spec.dataset in self._missing:
            raise MissingDataError(self._missing[spec.dataset])
        opts = dict(spec.dataset_options)
        fraction = opts.pop("inductive_fraction", 0.2)
        try:
            data = DATASETS.get(spec.dataset)(root=self.data_root, cache=self.cache_dir,
                                              protocol=spec.protocol, seed=spec.seed, **opts)
        except MissingDataError as e:
            self._missing[spec.dataset] = str(e)
            raise
        data = apply_setting(data, spec.setting, spec.seed, fraction)
        # train-time robustness runs (noisy features, poisoning): perturbed before anything trains
        data = apply_perturbation(data, spec.perturbation, spec.seed)
        self._data[key] = data
        while len(self._data) > 4:
            self._data.popitem(last=False)
        return data

    # ------------------------------------------------------------- teacher
    def teacher_cache_path(self, tspec: RunSpec, data: GraphData) -> Path:
        """Cache file of the trained teacher ``tspec`` on ``data``:
        ``<cache>/teachers/<dataset>/<teacher run_id>-<data.version>.pt`` (may not exist)."""
        return self.cache_dir / "teachers" / tspec.dataset / f"{tspec.run_id}-{data.version}.pt"

    def get_teacher(self, spec: RunSpec, data: GraphData, view: GraphData):
        """Teacher model, its frozen outputs on ``view`` and its metrics; trained once and cached per
        spec and seed.

        The outputs come from an eval-mode forward pass without gradients (the way the
        teacher was evaluated), detached, with every hidden layer: ``ModelOutput`` with
        logits ``[N, C]`` and hidden ``[N, d_l]`` on the view's graph; for a multi-graph
        view (PPI) on each training graph alone, concatenated in ``view.graphs["train"]``
        order (:func:`gkd_bench.fit.predict_graphs`; ``N`` = their node total), which
        :func:`gkd_bench.fit.make_batches` slices per batch. The teacher's parameters
        are frozen (``requires_grad=False``). The metrics carry ``git_sha``, the commit whose
        code trained the teacher (records store it as ``teacher_git_sha``; cache entries
        written before it was kept have none).
        """
        tspec = spec.teacher_run()
        path = self.teacher_cache_path(tspec, data)
        model = None
        if path.exists():
            try:
                blob = torch.load(path, map_location="cpu", weights_only=False)
                model = build_model(tspec.student, data)
                model.load_state_dict(blob["state_dict"])
                metrics = blob["metrics"]
            except Exception:  # noqa: BLE001 - a corrupted cache entry is retrained
                model = None
        if model is None:
            model, metrics, _ = self._train(tspec, data, view, None)
            metrics = {**metrics, "git_sha": git_sha()}  # as _save_teacher stores it
        for p in model.parameters():
            p.requires_grad_(False)
        # the teacher's outputs are computed the way it was evaluated; cache entries older than
        # mini-batch training carry no `batching` and were all trained in full batch
        ebs = eval_batch_size(TrainConfig.from_dict(tspec.student["train"]), metrics.get("batching", "full"))
        if view.graphs:
            return model, predict_graphs(model, view.graphs["train"], ebs).detach(), metrics
        return model, predict(model, view.graph, view.x, ebs).detach(), metrics

    def _save_teacher(self, tspec: RunSpec, data: GraphData, model, metrics: dict) -> None:
        """Write the teacher cache entry atomically: a uniquely named temporary file in the same
        folder, renamed into place, so concurrent writers (parallel or Ray workers training the
        same teacher) never leave a partial file; the last rename wins, with equal content."""
        path = self.teacher_cache_path(tspec, data)
        path.parent.mkdir(parents=True, exist_ok=True)
        # the code that trained it: a run that reads the entry later records it as teacher_git_sha
        entry = {"state_dict": model.state_dict(), "metrics": {**metrics, "git_sha": git_sha()},
                 "spec": tspec.to_dict()}
        atomic_replace(path, lambda tmp: torch.save(entry, tmp))

    # ---------------------------------------------------------------- train
    def _train(self, spec: RunSpec, data: GraphData, view: GraphData,
               teacher_out: Optional[ModelOutput]) -> Tuple[torch.nn.Module, dict, FitResult]:
        seed_everything(spec.seed)
        model = build_model(spec.student, data)
        distiller = DISTILLERS.get(spec.distiller["name"])(**spec.distiller["hparams"])
        online = getattr(distiller, "online", False)
        if online:  # K peer students; student 0 is the model above (same weights as `none`'s)
            model = distiller.build_students(model, lambda: build_model(spec.student, data))
        distiller.setup(view, model, teacher_out)
        cfg = TrainConfig.from_dict(spec.student["train"])
        result = fit(model, distiller, view, teacher_out, cfg)
        metrics = (evaluate_online(model, data, view) if online
                   else evaluate(model, data, view, eval_batch_size(cfg, result.batching)))
        metrics.update(best_epoch=result.best_epoch, epochs_run=result.epochs_run, train_s=result.train_s,
                       timed_out=result.timed_out, batching=result.batching)
        if online:
            metrics.update({f"best_epoch_s{i}": e for i, e in enumerate(result.member_best_epochs)})
        if spec.teacher is None and spec.distiller["name"] == "none":
            self._save_teacher(spec, data, model, metrics)
        return model, metrics, result

    # ------------------------------------------------------------------ run
    def run_one(self, spec: RunSpec) -> dict:
        """Execute one spec and return its record (not yet written)."""
        rec = self.base_record(spec)
        data = self.load_data(spec)
        view = data.training_view()
        rec.update(dataset_version=data.version, split_index=data.split_index, metric=data.metric,
                   num_nodes=data.num_nodes)
        teacher, teacher_out = None, None
        if spec.teacher is not None:
            teacher, teacher_out, tmetrics = self.get_teacher(spec, data, view)
            for k in ("val", "test", "test_tran", "test_ind", "batching", "git_sha"):
                if k in tmetrics:  # git_sha: the commit that trained the teacher (absent: an older cache entry)
                    rec[f"teacher_{k}"] = tmetrics[k]
            rec["teacher_params"] = count_parameters_all(teacher)
            rec["teacher_weights_sha"] = weights_sha(teacher)
        student, metrics, result = self._train(spec, data, view, teacher_out)
        rec.update({k: v for k, v in metrics.items() if k != "timed_out"})
        rec["weights_sha"] = weights_sha(student)  # online: the whole ensemble
        if isinstance(student, StudentEnsemble):  # online: params and latency of one student
            student = student[0]
        rec["student_params"] = count_parameters(student)
        ebs = eval_batch_size(TrainConfig.from_dict(spec.student["train"]), metrics.get("batching", "full"))
        # G-CRD cka/global_corr/local_corr on val nodes (multi-graph: the val graphs' nodes, pooled)
        rec.update(analysis_columns(teacher_out, student, view, ebs, teacher=teacher))
        rec.update(perturbation_columns(spec.perturbation))
        if spec.perturbation is None:  # test-time robustness of a model trained clean (gkd_bench.robustness)
            rec.update(robustness_columns(student, data, spec.seed, metrics.get("test_s0", metrics.get("test")),
                                          functools.partial(evaluate, batch_size=ebs),
                                          resolve_robustness((spec.evaluation or {}).get("robustness"))))
        if self.timing and spec.perturbation is None:  # full, online@B; teacher, student back to back
            rec.update(self.latency(spec, data, student, teacher, full=ebs is None))
        rec["status"] = "timeout" if metrics.get("timed_out") else "ok"
        return rec

    def latency(self, spec: RunSpec, data: GraphData, student, teacher, full: bool) -> dict:
        """Latency columns of a run (:func:`gkd_bench.timing.latency_columns`), plus ``timing_run_id``.

        Timed once per process for each combination of teacher and student architecture
        (:func:`gkd_bench.timing.model_signature` and their specs), dataset version and options, protocol,
        setting, split, seed (which draws the online nodes), latency settings, thread count and device;
        a later run with the same combination (a different distiller or loss weight, say) reuses those
        columns, and ``timing_run_id`` names the run that measured them. Trained weights do not change
        inference time, and the speedups of such runs then share one timing instead of differing by noise.
        ``full=False`` (mini-batch runs) leaves out the whole-graph scenario.
        """
        lat = resolve_latency((spec.evaluation or {}).get("latency"))
        key = canonical([data.version, spec.dataset, spec.dataset_options, spec.protocol, spec.setting,
                         data.split_index, spec.seed, spec.student, spec.teacher, model_signature(student),
                         model_signature(teacher), lat, full, torch.get_num_threads(), self.device])
        if key not in self._latency:
            cols = latency_columns(student, teacher, data, spec.seed, lat["batches"], lat["min_run_time"],
                                   lat["memory"], full=full)
            self._latency[key] = (cols, spec.run_id)
        cols, run_id = self._latency[key]
        return {**cols, "timing_run_id": run_id}

    def base_record(self, spec: RunSpec) -> dict:
        """The fields every record of ``spec`` carries whatever its status: ids, dataset, split, setting,
        teacher, student, distiller and their settings, seed, start time, status ``running``, executor,
        environment (versions, hardware, git sha) and search grid point; metrics are added after training."""
        return {
            "run_id": spec.run_id, "config_id": spec.config_id, "suite": spec.suite,
            "dataset": spec.dataset, "split": spec.protocol, "setting": spec.setting,
            "teacher": spec.teacher["label"] if spec.teacher else None,
            "teacher_model": spec.teacher["model"] if spec.teacher else None,
            "teacher_hparams": canonical(spec.teacher["hparams"]) if spec.teacher else None,
            "student": spec.student["label"], "student_model": spec.student["model"],
            "distiller": spec.distiller["label"], "distiller_name": spec.distiller["name"],
            "hparams": spec.hparams_json, "seed": spec.seed,
            "perturbation": canonical(spec.perturbation) if spec.perturbation else None,
            "spec": canonical(spec.to_dict()),
            "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "status": "running", "error": None, "executor": self.executor, **environment(self.device),
            **search_columns(spec.search),  # grid point of a hyperparameter search (gkd_bench.search)
        }

    def run(self, specs: Iterable[RunSpec], progress: bool = True, executor=None) -> collections.Counter:
        """Run every spec without an ``ok`` record; returns a Counter of statuses (``done`` = already recorded).

        ``executor``: where the runs execute (:mod:`gkd_bench.executors`); ``None``
        = :class:`~gkd_bench.executors.LocalExecutor`, one after another in this process.
        """
        from gkd_bench.executors import LocalExecutor

        executor = executor or LocalExecutor()
        specs = list(specs)
        counts: collections.Counter = collections.Counter()
        for suite in sorted({s.suite for s in specs}):  # fail before training, not after
            ensure_writable(record_path(self.results_dir, suite, "probe").parent)
        todo = execution_order([s for s in specs if self.rerun or not is_done(self.results_dir, s.suite, s.run_id)])
        counts["done"] = len(specs) - len(todo)
        bar = None
        if progress and todo:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), unit="run", dynamic_ncols=True)
        try:
            if todo:
                executor.execute(self, todo, counts, bar)
        finally:
            if bar is not None:
                bar.close()
        return counts

    def _run_safely(self, spec: RunSpec) -> dict:
        try:
            return self.run_one(spec)
        except MissingDataError as e:
            if self.fail_fast:
                raise
            return self._skipped_record(spec, self.portable(str(e)))
        except Exception as e:  # noqa: BLE001 - failures are records
            if self.fail_fast:
                raise
            oom = isinstance(e, MemoryError) or "out of memory" in str(e).lower()
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:])
            return {**self.base_record(spec), "status": "oom" if oom else "error",
                    "error": self.portable(f"{type(e).__name__}: {e}\n{tb}")}

    def _skipped_record(self, spec: RunSpec, error: str) -> dict:
        """The ``skipped`` record for ``spec``; the one already on disk when it says the same thing.

        A sweep re-attempts skipped runs (the files may have arrived), and a run whose data is still
        absent would otherwise get a fresh record that differs only in sha and time, leaving a modified
        tracked file for every such run in a user's checkout. Kept when the existing record is
        ``skipped`` for the same spec with the same error text; rewritten otherwise.
        """
        new = {**self.base_record(spec), "status": "skipped", "error": error}
        old = read_record(record_path(self.results_dir, spec.suite, spec.run_id))
        if (old is not None and old.get("status") == "skipped" and old.get("error") == error
                and old.get("spec") == new["spec"]):
            return old
        return new

    def portable(self, text: str) -> str:
        """``text`` with this machine's data root and cache folder written as ``$GKD_BENCH_DATA`` and
        ``$GKD_BENCH_CACHE``: records are committed and shared, so their error messages must not name
        one machine's folders (missing files stay named relative to the data root)."""
        names = {"$GKD_BENCH_DATA": data_root(self.data_root), "$GKD_BENCH_CACHE": self.cache_dir}
        forms = sorted(((str(f), name) for name, p in names.items()
                        for f in {Path(p), Path(p).resolve()}), key=lambda t: -len(t[0]))
        for form, name in forms:  # longest first: an absolute form may contain a shorter one
            text = text.replace(form, name)
        return text


def count_parameters_all(module: torch.nn.Module) -> int:
    """All scalar parameters, trainable or frozen (a cached teacher is frozen)."""
    return sum(p.numel() for p in module.parameters())
