"""Where a sweep's runs execute: in this process (``local``, the default) or as Ray tasks (``ray``).

Both executors write the same per-run records with the same atomic writes
(:func:`gkd_bench.records.write_record`), keyed by run id, so a sweep can mix
local and cluster runs and resume from either: whichever executor runs next
skips every run that already has an ``ok`` record. The only difference in a
record is its provenance (``executor``, and the machine's columns).

Ray (``pip install gkd-bench[ray]``, imported only when chosen):

- every RunSpec is one Ray task with ``num_cpus=cpus_per_task`` (and one
  GPU when the runner's device is CUDA); inside it torch uses
  ``cpus_per_task`` threads;
- a task whose worker process dies (killed, out of memory, node lost) is
  retried by Ray up to ``max_retries`` times; a task that finds its run's
  ``ok`` record already written (by an attempt that died after writing it)
  does not run again, so a run is never recorded twice; a run whose retries
  are exhausted gets an ``error`` record written by the driver;
- teachers first: a student run starts only once the run that trains its
  teacher (the suite's ``none`` run of that model and seed, or a teacher-only
  task when the suite has no such run) has finished and written the teacher
  cache, so one teacher is never trained twice concurrently; cache entries
  are written atomically in any case;
- records, the teacher cache and the data root are paths every node must
  see at the same place (shared storage); the driver passes its absolute
  paths to the tasks.
"""
from __future__ import annotations

import collections
import os
import signal
from pathlib import Path
from typing import Dict, List, Optional

RAY_EXTRA_HINT = "pip install gkd-bench[ray]"
EXECUTORS = ("local", "ray")
#: fault injection for the test suite: path of a marker file; the first Ray task to reach the point
#: between computing its record and writing it creates the file and kills its own worker (SIGKILL)
FAULT_ENV = "GKD_BENCH_FAULT_KILL_ONCE"


class ExecutorUnavailable(RuntimeError):
    """An executor cannot be used here (Ray not installed, or no cluster at the address)."""


def import_ray():
    """``import ray``, or :class:`ExecutorUnavailable` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable(f"--executor ray needs Ray, which is not installed: {RAY_EXTRA_HINT} "
                                  "(or pip install ray==2.60.0)") from None
    return ray


class LocalExecutor:
    """Runs specs one after another in this process (the default; needs no Ray)."""

    name = "local"

    def execute(self, runner, specs: List, counts: collections.Counter, bar=None) -> None:
        from gkd_bench.records import record_path, write_record

        for spec in specs:
            if bar is not None:
                bar.set_description(f"{spec.dataset} {spec.teacher['label'] if spec.teacher else '-'}"
                                    f"->{spec.student['label']} {spec.distiller['label']} s{spec.seed}")
            rec = runner._run_safely(spec)
            write_record(record_path(runner.results_dir, spec.suite, spec.run_id), rec)
            counts[rec["status"]] += 1
            if bar is not None:
                bar.update(1)


# ------------------------------------------------------------------ worker side (inside Ray tasks)
_WORKER_RUNNERS: Dict[str, object] = {}


def _worker_runner(settings: dict):
    """One Runner per worker process and settings (its in-memory dataset cache survives across tasks)."""
    import json

    from gkd_bench.runner import Runner

    key = json.dumps(settings, sort_keys=True, default=str)
    runner = _WORKER_RUNNERS.get(key)
    if runner is None:
        runner = _WORKER_RUNNERS[key] = Runner(**settings)
        runner.executor = "ray"
    return runner


def _fault_point() -> None:
    marker = os.environ.get(FAULT_ENV)
    if not marker or not Path(marker).parent.is_dir():
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def run_spec_task(settings: dict, spec, threads: int) -> str:
    """Body of a run task: run ``spec`` unless its ``ok`` record exists, write its record; its status."""
    import torch

    from gkd_bench.records import read_record, record_path, write_record

    torch.set_num_threads(max(int(threads), 1))
    runner = _worker_runner(settings)
    path = record_path(runner.results_dir, spec.suite, spec.run_id)
    if not runner.rerun:
        done = read_record(path)
        if done is not None and done.get("status") == "ok":  # written by an attempt whose worker then died
            return "ok"
    rec = runner._run_safely(spec)
    _fault_point()
    write_record(path, rec)
    return rec["status"]


def teacher_task(settings: dict, spec, threads: int) -> str:
    """Body of a teacher-only task: load ``spec``'s teacher from the cache, or train and cache it.

    Returns ``"ok"`` or the error message; a failure is not recorded here (the
    student runs meet it again and record it).
    """
    import torch

    torch.set_num_threads(max(int(threads), 1))
    runner = _worker_runner(settings)
    try:
        data = runner.load_data(spec)
        runner.get_teacher(spec, data, data.training_view())
        return "ok"
    except Exception as e:  # noqa: BLE001
        if runner.fail_fast:
            raise
        return f"{type(e).__name__}: {e}"


# ------------------------------------------------------------------ driver side
class RayExecutor:
    """Runs each spec as a Ray task (see the module docstring).

    Args:
        address: Ray cluster address (``auto``, ``ray://host:10001``, ``host:6379``);
            ``None``: an already initialised Ray, else a new local instance.
        cpus_per_task: CPUs each run reserves (and torch threads it uses).
        max_retries: retries of a task whose worker died.

    Raises:
        ExecutorUnavailable: Ray is not installed (names ``pip install gkd-bench[ray]``).
    """

    name = "ray"

    def __init__(self, address: Optional[str] = None, cpus_per_task: int = 1, max_retries: int = 3):
        self.ray = import_ray()
        if int(cpus_per_task) < 1:
            raise ValueError(f"cpus per task must be >= 1, got {cpus_per_task}")
        self.address, self.cpus, self.max_retries = address, int(cpus_per_task), int(max_retries)

    def _connect(self) -> bool:
        """Connect (or start a local instance); True when this executor started/connected Ray itself."""
        ray = self.ray
        if ray.is_initialized():
            return False
        try:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=True,
                     configure_logging=False)
        except ConnectionError as e:
            raise ExecutorUnavailable(f"cannot connect to a Ray cluster at {self.address!r}: {e}") from None
        return True

    def execute(self, runner, specs: List, counts: collections.Counter, bar=None) -> None:
        from gkd_bench.records import record_path, write_record

        ray = self.ray
        started = self._connect()
        try:
            self._execute(ray, runner, specs, counts, bar, record_path, write_record)
        finally:
            if started:
                ray.shutdown()

    def _execute(self, ray, runner, specs, counts, bar, record_path, write_record) -> None:
        settings = {"results_dir": str(Path(runner.results_dir).resolve()),
                    "data_root": str(Path(runner.data_root).resolve()) if runner.data_root else
                    os.environ.get("GKD_BENCH_DATA"),
                    "cache_dir": str(Path(runner.cache_dir).resolve()), "rerun": runner.rerun,
                    "fail_fast": runner.fail_fast, "timing": runner.timing, "device": runner.device}
        opts = {"num_cpus": self.cpus, "num_gpus": 1 if str(runner.device).startswith("cuda") else 0,
                "max_retries": self.max_retries, "retry_exceptions": False}
        run_remote = ray.remote(run_spec_task).options(**opts)
        teacher_remote = ray.remote(teacher_task).options(**opts)

        # teachers first: which task produces each teacher, and which students wait for it
        todo_ids = {s.run_id for s in specs}
        waiting: Dict[str, list] = collections.defaultdict(list)
        teacher_specs: Dict[str, object] = {}
        first_wave = []
        for s in specs:
            if s.teacher is None:
                first_wave.append(s)
                continue
            tspec = s.teacher_run()
            waiting[tspec.run_id].append(s)
            if tspec.run_id not in todo_ids:
                teacher_specs.setdefault(tspec.run_id, tspec)
        pending: Dict[object, tuple] = {}

        def launch_run(spec):
            pending[run_remote.remote(settings, spec, self.cpus)] = ("run", spec)

        for spec in first_wave:
            launch_run(spec)
        for tid, tspec in teacher_specs.items():
            pending[teacher_remote.remote(settings, tspec, self.cpus)] = ("teacher", tspec)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                ref = ready[0]
                kind, spec = pending.pop(ref)
                try:
                    status = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # an exception inside the task: fail_fast only
                    raise e.as_instanceof_cause() from None
                except ray.exceptions.RayError as e:  # worker died more than max_retries times, node lost ...
                    status = "error"
                    if kind == "run":
                        if runner.fail_fast:
                            raise
                        rec = {**runner.base_record(spec), "status": "error", "executor": "ray",
                               "error": f"{type(e).__name__} after {self.max_retries} retries: {e}"}
                        write_record(record_path(runner.results_dir, spec.suite, spec.run_id), rec)
                if kind == "run":
                    counts[status] += 1
                    if bar is not None:
                        bar.update(1)
                for student in waiting.pop(spec.run_id, []):  # its teacher is cached (or failed: recorded)
                    launch_run(student)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        # every teacher has a producing task: the suite's own `none` run (teacher_run() has the
        # run id of that run) or a teacher-only task
        assert not waiting, f"students left waiting for teachers {sorted(waiting)}"


def make_executor(name: str = "local", address: Optional[str] = None, cpus_per_task: int = 1,
                  max_retries: int = 3):
    """``local`` -> :class:`LocalExecutor`; ``ray`` -> :class:`RayExecutor`.

    Raises:
        ValueError: an unknown name, or ``address`` given for the local executor.
        ExecutorUnavailable: ``ray`` without Ray installed.
    """
    if name == "local":
        if address:
            raise ValueError("--address needs --executor ray")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address, cpus_per_task, max_retries)
    raise ValueError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
