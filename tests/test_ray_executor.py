"""Sweeps on Ray (issue 9): same records as the local executor, resume across executors, a killed worker's
run retried without losing or duplicating a record, and a clear error when Ray is not installed.

One local Ray instance (``ray.init(num_cpus=2)``) serves the module; the suite is a tiny Cora one (a few
seconds per sweep): GCN and MLP trained alone, and an MLP distilled from GCN (whose teacher is the suite's
own ``none`` GCN run) and from SAGE (no ``none`` run: a teacher-only task trains it first).
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gkd_bench.cli import main
from gkd_bench.env import git_sha
from gkd_bench.executors import FAULT_ENV
from tests.conftest import requires_data

SUITE = """
name: raytiny
seeds: 0-1
datasets:
  cora: {protocol: planetoid}
train: {epochs: 12, patience: 12}
models:
  gcn: {model: gcn, hidden: 16}
  sage: {model: sage, hidden: 16}
  mlp: {model: mlp, hidden: 32}
distillers:
  none: {}
  kd: {lam: 0.5}
experiments:
  - {student: [gcn, mlp], distiller: none}
  - {teacher: [gcn, sage], student: mlp, distiller: kd}
robustness: false
"""
N_RUNS = 8
# columns that may differ between two sweeps of the same specs: wall-clock times and provenance (the git
# sha too: a commit made while the test session runs relabels the later sweep; checked separately below)
VOLATILE = {"started_at", "train_s", "executor", "git_sha"}

needs_cora = requires_data("planetoid/ind.cora.x")


def _stable(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in VOLATILE and "latency" not in k and not k.endswith("_ms")}


def _records(results: Path) -> dict:
    files = sorted((results / "runs" / "raytiny").glob("*.json"))
    recs = [json.loads(p.read_text()) for p in files]
    assert len({r["run_id"] for r in recs}) == len(recs)  # one file per run id: no duplicates
    assert all(p.stem == r["run_id"] for p, r in zip(files, recs))
    return {r["run_id"]: r for r in recs}


def _run(suite: Path, results: Path, cache: Path, *extra: str):
    r = CliRunner().invoke(main, ["run", "--suite", str(suite), "--results-dir", str(results), "--cache-dir",
                                  str(cache), "--no-timing", "--no-report", *extra])
    assert r.exit_code == 0, r.output + repr(r.exception)
    return r.output


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local Ray instance with 2 CPUs; its workers inherit FAULT_ENV, armed only while the marker's
    folder exists (the fault test creates it)."""
    ray = pytest.importorskip("ray")
    marker = tmp_path_factory.mktemp("fault") / "armed" / "killed"
    old = os.environ.get(FAULT_ENV)
    os.environ[FAULT_ENV] = str(marker)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield marker
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop(FAULT_ENV, None)
        else:
            os.environ[FAULT_ENV] = old


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The suite swept by the local executor (the reference records), with one torch and one BLAS thread
    as in the Ray tasks (``--cpus-per-task 1``; Ray sets OMP_NUM_THREADS=1): float reductions, hence the
    last digits of the analysis columns, depend on the thread count."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)  # module fixtures run before conftest's per-test autouse fixture
    base = tmp_path_factory.mktemp("local")
    suite = base / "raytiny.yaml"
    suite.write_text(SUITE)
    with threadpool_limits(1):
        _run(suite, base / "results", base / "cache")
    recs = _records(base / "results")
    assert len(recs) == N_RUNS and all(r["status"] == "ok" and r["executor"] == "local" for r in recs.values())
    return suite, recs


@needs_cora
def test_ray_sweep_equals_local_and_resumes_across_executors(ray_cluster, local_sweep, tmp_path):
    suite, local = local_sweep
    results = tmp_path / "results"
    out = _run(suite, results, tmp_path / "cache", "--executor", "ray")
    assert f"{N_RUNS} ok" in out
    recs = _records(results)
    assert set(recs) == set(local)
    assert all(r["executor"] == "ray" and r["threads"] == 1 for r in recs.values())
    for rid, rec in recs.items():
        assert _stable(rec) == _stable(local[rid]), rid
    # the workers stamp the checkout's commit (not `unknown`) when the driver can read it
    if git_sha() != "unknown":
        assert all(re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", r["git_sha"]) for r in recs.values()), recs
    # every `none` run caches its model (gcn, mlp); the SAGE teacher (no `none` run in the suite) was
    # trained by a teacher-only task: 3 models x 2 seeds, and no temporary file left behind
    cached = list((tmp_path / "cache" / "teachers" / "cora").iterdir())
    assert len(cached) == 6 and all(p.suffix == ".pt" for p in cached)
    # resume: Ray again trains nothing; a local sweep finishes what a Ray sweep left, and vice versa
    mtimes = {p: p.stat().st_mtime_ns for p in (results / "runs" / "raytiny").glob("*.json")}
    assert f"{N_RUNS} done" in _run(suite, results, tmp_path / "cache", "--executor", "ray")
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    gone = sorted(mtimes)[:3]
    for p in gone:
        p.unlink()
    out = _run(suite, results, tmp_path / "cache")
    assert f"{N_RUNS - 3} done, 3 ok" in out
    assert {json.loads(p.read_text())["executor"] for p in gone} == {"local"}
    gone[0].unlink()
    assert "1 ok" in _run(suite, results, tmp_path / "cache", "--executor", "ray")
    assert set(_records(results)) == set(local)


@needs_cora
def test_killed_worker_is_retried_and_no_record_is_lost_or_duplicated(ray_cluster, local_sweep, tmp_path):
    suite, local = local_sweep
    marker = ray_cluster
    marker.parent.mkdir()  # arm: the first task to finish computing its record SIGKILLs its own worker
    try:
        results = tmp_path / "results"
        out = _run(suite, results, tmp_path / "cache", "--executor", "ray", "--max-retries", "2")
        killed = marker.exists()
    finally:
        marker.unlink(missing_ok=True)
        marker.parent.rmdir()
    assert killed, "no worker was killed"
    assert f"{N_RUNS} runs ({N_RUNS} ok)" in out  # no error record; the driver saw every run finish once
    recs = _records(results)
    assert set(recs) == set(local)
    assert not list((results / "runs" / "raytiny").glob("*.tmp")) and not list(
        (results / "runs" / "raytiny").glob(".*"))
    for rid, rec in recs.items():
        assert _stable(rec) == _stable(local[rid]), rid


@needs_cora
def test_a_run_whose_retries_are_exhausted_becomes_an_error_record(ray_cluster, local_sweep, tmp_path):
    suite, _ = local_sweep
    marker = ray_cluster
    marker.parent.mkdir()
    try:
        out = _run(suite, tmp_path / "results", tmp_path / "cache", "--executor", "ray", "--max-retries", "0",
                   "--student", "mlp", "--distiller", "none", "--seeds", "0")
    finally:
        marker.unlink(missing_ok=True)
        marker.parent.rmdir()
    assert "1 error" in out
    (rec,) = _records(tmp_path / "results").values()
    assert rec["status"] == "error" and "WorkerCrashedError" in rec["error"] and rec["executor"] == "ray"
    assert "1 ok" in _run(suite, tmp_path / "results", tmp_path / "cache", "--executor", "ray",
                          "--student", "mlp", "--distiller", "none", "--seeds", "0")  # resumes: error -> rerun


def test_without_ray_the_cli_names_the_extra_and_local_runs_need_no_ray(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    r = CliRunner().invoke(main, ["run", "--suite", "smoke", "--executor", "ray", "--results-dir", str(tmp_path)])
    assert r.exit_code != 0 and "pip install gkd-bench[ray]" in r.output, r.output
    r = CliRunner().invoke(main, ["run", "--suite", "smoke", "--address", "auto", "--results-dir", str(tmp_path)])
    assert r.exit_code != 0 and "--address needs --executor ray" in r.output
    code = ("import sys; import gkd_bench.cli, gkd_bench.runner, gkd_bench.executors, gkd_bench.minibatch; "
            "assert 'ray' not in sys.modules, 'ray imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
