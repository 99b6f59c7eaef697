"""The CLI end to end on real Cora in a temporary directory: run, resume, interrupt, report, bad input."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gkd_bench.cli import main
from tests.conftest import requires_data

SUITE = """
name: tiny
seeds: 0-1
datasets:
  cora: {protocol: planetoid}
train: {epochs: 15, patience: 15}
models:
  gcn: {model: gcn, hidden: 16}
  mlp: {model: mlp, hidden: 32}
distillers:
  none: {}
  kd: {lam: 0.5}
experiments:
  - {student: [gcn, mlp], distiller: none}
  - {teacher: gcn, student: mlp, distiller: kd}
"""

needs_cora = requires_data("planetoid/ind.cora.x")


def _records(results):
    return {p.name: json.loads(p.read_text()) for p in (results / "runs" / "tiny").glob("*.json")}


@needs_cora
def test_run_resume_and_report(tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(SUITE)
    results = tmp_path / "results"
    cli = CliRunner()
    r = cli.invoke(main, ["run", "--suite", str(suite), "--results-dir", str(results), "--no-timing"])
    assert r.exit_code == 0, r.output
    recs = _records(results)
    assert len(recs) == 6 and all(v["status"] == "ok" for v in recs.values())
    kd = [v for v in recs.values() if v["distiller"] == "kd"]
    assert all(v["teacher"] == "gcn" and v["teacher_test"] is not None for v in kd)
    # the kd student's teacher numbers are the numbers of the `none` gcn run of the same seed (cache reuse)
    gcn = {v["seed"]: v["test"] for v in recs.values() if v["student"] == "gcn"}
    assert all(v["teacher_test"] == pytest.approx(gcn[v["seed"]]) for v in kd)
    for name in ("LEADERBOARD.md", "leaderboard.csv", "runs.csv"):
        assert (results / "tiny" / name).stat().st_size > 0
    md = (results / "tiny" / "LEADERBOARD.md").read_text()
    assert "cora" in md and "gain_vs_none" in md and "± " in md
    mtimes = {p: p.stat().st_mtime_ns for p in (results / "runs" / "tiny").glob("*.json")}
    r = cli.invoke(main, ["run", "--suite", str(suite), "--results-dir", str(results), "--no-timing"])
    assert r.exit_code == 0 and "6 done" in r.output, r.output
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing retrained or rewritten
    r = cli.invoke(main, ["report", "--results-dir", str(results), "--format", "csv"])
    assert r.exit_code == 0 and "leaderboard.csv" in r.output


@needs_cora
def test_interrupt_keeps_finished_records_and_resumes(tmp_path):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(SUITE.replace("seeds: 0-1", "seeds: 0-3").replace("epochs: 15, patience: 15",
                                                                      "epochs: 60, patience: 60"))
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "gkd_bench.cli", "run", "--suite", str(suite), "--results-dir", str(results),
           "--no-timing", "--no-report"]
    # a shell that starts jobs in the background (`cmd &`, nohup) hands them SIGINT ignored, and Python
    # keeps an inherited SIG_IGN: restore the default so Ctrl-C is what this test sends, however CI runs it
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    runs = results / "runs" / "tiny"
    deadline = time.time() + 600
    while time.time() < deadline and not list(runs.glob("*.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 130, out
    assert "interrupted" in out
    kept = list(runs.glob("*.json"))
    assert 1 <= len(kept) < 12
    for p in kept:
        assert json.loads(p.read_text())["status"] == "ok"  # complete, parseable records only
    assert not list(runs.glob("*.tmp"))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(kept)} done" in r.stdout
    assert len(list(runs.glob("*.json"))) == 12


def test_unknown_dataset_exits_non_zero_with_close_matches(tmp_path):
    r = CliRunner().invoke(main, ["run", "--dataset", "coraa", "--results-dir", str(tmp_path)])
    assert r.exit_code != 0
    assert "did you mean cora" in r.output and "citeseer" in r.output
    r = CliRunner().invoke(main, ["run", "--dataset", "nosuch", "--results-dir", str(tmp_path)])
    assert r.exit_code != 0 and "unknown dataset 'nosuch'" in r.output and "Available datasets" in r.output


def test_malformed_suite_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndatasets:\n  cora: [planetoid\nseeds: 0\n")
    r = CliRunner().invoke(main, ["run", "--suite", str(bad), "--results-dir", str(tmp_path)])
    assert r.exit_code != 0 and "line" in r.output and "bad.yaml" in r.output


def test_missing_data_file_is_named_and_recorded_as_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("GKD_BENCH_OFFLINE", "1")
    root = tmp_path / "data"
    (root / "planetoid").mkdir(parents=True)
    r = CliRunner().invoke(main, ["run", "--dataset", "cora", "--student", "mlp", "--distiller", "none",
                                  "--seeds", "0", "--data-dir", str(root), "--results-dir", str(tmp_path / "res"),
                                  "--fail-fast"])
    assert r.exit_code != 0
    assert "ind.cora.x" in r.output and "missing" in r.output
    r = CliRunner().invoke(main, ["run", "--dataset", "cora", "--student", "mlp", "--distiller", "none",
                                  "--seeds", "0", "--data-dir", str(root), "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    rec = json.loads(next((tmp_path / "res" / "runs" / "default").glob("*.json")).read_text())
    assert rec["status"] == "skipped" and "ind.cora.x" in rec["error"]
    md = (tmp_path / "res" / "default" / "LEADERBOARD.md").read_text()
    assert "skipped" in md and "cora" in md


def test_rerun_keeps_an_unchanged_skipped_record(tmp_path, monkeypatch):
    """A sweep re-attempts skipped runs; if the data is still absent for the same reason the record on disk
    stays byte-identical (no modified tracked file per skipped run), and a different reason rewrites it."""
    monkeypatch.setenv("GKD_BENCH_OFFLINE", "1")
    root = tmp_path / "data"
    (root / "planetoid").mkdir(parents=True)
    args = ["run", "--dataset", "cora", "--student", "mlp", "--distiller", "none", "--seeds", "0",
            "--data-dir", str(root), "--results-dir", str(tmp_path / "res"), "--no-report"]
    assert CliRunner().invoke(main, args).exit_code == 0
    path = next((tmp_path / "res" / "runs" / "default").glob("*.json"))
    rec = json.loads(path.read_text())
    rec["started_at"] = "2000-01-01T00:00:00+00:00"  # as if written by an earlier sweep
    path.write_text(json.dumps(rec, indent=1, sort_keys=True))
    before = path.read_bytes()
    assert CliRunner().invoke(main, args).exit_code == 0
    assert path.read_bytes() == before
    rec["error"] = "an older reason"
    path.write_text(json.dumps(rec, indent=1, sort_keys=True))
    assert CliRunner().invoke(main, args).exit_code == 0
    again = json.loads(path.read_text())
    assert again["status"] == "skipped" and "ind.cora.x" in again["error"]
    assert again["started_at"] != "2000-01-01T00:00:00+00:00"
    # a record of the same run id whose spec differs (e.g. written by older code) is rewritten too
    again["spec"] = json.dumps({**json.loads(again["spec"]), "old": 1})
    again["started_at"] = "2000-01-01T00:00:00+00:00"
    path.write_text(json.dumps(again, indent=1, sort_keys=True))
    assert CliRunner().invoke(main, args).exit_code == 0
    last = json.loads(path.read_text())
    assert '"old"' not in last["spec"] and last["started_at"] != "2000-01-01T00:00:00+00:00"


def test_unwritable_results_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = CliRunner().invoke(main, ["run", "--dataset", "cora", "--student", "mlp", "--distiller", "none",
                                  "--seeds", "0", "--results-dir", str(blocker / "sub"), "--no-timing"])
    assert r.exit_code != 0 and "cannot write records" in r.output


def test_list_shows_registries():
    r = CliRunner().invoke(main, ["list"])
    assert r.exit_code == 0
    assert "cora" in r.output and "gcn" in r.output and "kd" in r.output and "smoke" in r.output


def test_run_all_covers_every_registered_dataset_and_reports_the_missing_ones(tmp_path, monkeypatch):
    """Issue 3, acceptance 4: `run --all` (the default suite) has an entry for every registered dataset; with
    an empty data root each one becomes a `skipped` record naming its missing file, and the leaderboard's
    "Not run / failed" table lists every dataset with that reason."""
    from gkd_bench.registry import DATASETS

    monkeypatch.setenv("GKD_BENCH_OFFLINE", "1")
    root = tmp_path / "empty"
    root.mkdir()
    r = CliRunner().invoke(main, ["run", "--all", "--student", "mlp", "--distiller", "none", "--seeds", "0",
                                  "--data-dir", str(root), "--results-dir", str(tmp_path / "res"), "--no-timing"])
    assert r.exit_code == 0, r.output
    recs = [json.loads(p.read_text()) for p in (tmp_path / "res" / "runs" / "default").glob("*.json")]
    assert sorted(rec["dataset"] for rec in recs) == sorted(DATASETS.names())
    assert all(rec["status"] == "skipped" and "missing" in rec["error"] for rec in recs)
    # records name the missing files under $GKD_BENCH_DATA, never this machine's folder
    assert all("$GKD_BENCH_DATA/" in rec["error"] and str(root) not in rec["error"] for rec in recs)
    md = (tmp_path / "res" / "default" / "LEADERBOARD.md").read_text()
    table = md[md.index("## Not run / failed"):]
    for rec in recs:
        row = next(line for line in table.splitlines() if line.startswith(f"| {rec['dataset']} "))
        assert "skipped" in row and "missing" in row, row


STATUS_SUITE = """
name: tinystatus
seeds: 0-3
datasets:
  cora: {protocol: planetoid}
models:
  gcn: {model: gcn, hidden: 16}
  mlp: {model: mlp, hidden: 32}
distillers:
  none: {}
  kd: {lam: 0.5, search: {T: [1.0, 4.0], seeds: 0-1}}
experiments:
  - {student: [gcn, mlp], distiller: none}
  - {teacher: gcn, student: mlp, distiller: kd}
"""


def test_status_counts_runs_and_estimates_hours_left(tmp_path):
    """No data needed: records are written by hand. Plan: none 2 students x 4 seeds, kd stage 1 2 grid
    points x seeds 0-1, stage 2 the selected point on seeds 2-3 (undecided while stage 1 is incomplete)."""
    import io

    import pandas as pd

    from gkd_bench.records import record_path, write_record
    from gkd_bench.spec import expand, load_suite

    suite = tmp_path / "tinystatus.yaml"
    suite.write_text(STATUS_SUITE)
    results = tmp_path / "results"
    specs = expand(load_suite(str(suite)), all_seeds=True)

    def put(spec, status, train_s=None):
        write_record(record_path(results, spec.suite, spec.run_id),
                     {"run_id": spec.run_id, "suite": spec.suite, "status": status, "train_s": train_s,
                      "val": 80.0, "test": 80.0})

    for s in specs:
        kind = (s.student["label"], s.distiller["label"], (s.search or {}).get("index"), s.seed)
        if kind[:2] == ("gcn", "none"):
            put(s, "ok", 3600.0)
        elif kind[:2] == ("mlp", "none"):
            {0: lambda: put(s, "ok", 1800.0), 1: lambda: put(s, "error"), 2: lambda: put(s, "skipped"),
             3: lambda: None}[s.seed]()
        elif kind[2] is not None and s.seed in (0, 1) and kind[2:] != (1, 1):  # kd T=4 seed 1 still to do
            put(s, "ok", 720.0)
    r = CliRunner().invoke(main, ["status", "--suite", str(suite), "--results-dir", str(results),
                                  "--format", "csv"])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(io.StringIO(r.output)).set_index("dataset")
    row = table.loc["cora"]
    assert (row["runs"], row["ok"], row["failed"], row["skipped"], row["to_do"]) == (12, 8, 1, 1, 2)
    assert row["stage2_undecided"] == 2 and row["unestimated"] == 0
    assert row["train_h_done"] == pytest.approx((4 * 3600 + 1800 + 3 * 720) / 3600, abs=0.01)
    # to do: mlp none seed 3 and the failed seed 1 (1800 s each), kd T=4 seed 1 and 2 stage-2 runs (720 s each)
    assert row["est_h_to_do"] == pytest.approx((2 * 1800 + 3 * 720) / 3600, abs=0.01)
    assert table.loc["total", "runs"] == 12
    r = CliRunner().invoke(main, ["status", "--suite", str(suite), "--results-dir", str(results)])
    assert r.exit_code == 0 and "| cora" in r.output and "stage2_undecided" in r.output, r.output
    r = CliRunner().invoke(main, ["status", "--suite", "no-such-suite", "--results-dir", str(results)])
    assert r.exit_code != 0 and "no-such-suite" in r.output


@needs_cora
def test_records_name_the_commit_that_trained_their_teacher(tmp_path):
    """teacher_git_sha: the commit of the process that trained the teacher, whether this run trained it or
    read it from the cache; absent for a cache entry written before teachers carried it."""
    import torch

    from gkd_bench.env import git_sha

    base = ["run", "--dataset", "cora", "--teacher", "gcn", "--student", "mlp", "--distiller", "kd", "--seeds", "0",
            "--data-dir", os.environ["GKD_BENCH_DATA"], "--cache-dir", str(tmp_path / "cache"), "--no-report",
            "--no-timing", "--set", "train.epochs=3", "--set", "robustness=false"]

    def run(results, *extra):
        r = CliRunner().invoke(main, base + ["--results-dir", str(tmp_path / results), *extra])
        assert r.exit_code == 0, r.output
        (rec,) = [json.loads(p.read_text()) for p in (tmp_path / results / "runs" / "default").glob("*.json")]
        return rec

    trained = run("a")                                        # trains and caches the teacher
    cached = run("b", "--set", "distillers.kd.T=2.0")         # another config: reads the cache
    assert trained["teacher_git_sha"] == cached["teacher_git_sha"] == git_sha()
    # the same teacher instance: equal weights fingerprints, and the teacher's own run (which trained
    # the cache entry's weights) records that fingerprint as its weights_sha
    assert trained["teacher_weights_sha"] == cached["teacher_weights_sha"] != cached["weights_sha"]
    r = CliRunner().invoke(main, base[:3] + ["--student", "gcn", "--distiller", "none"] + base[9:]
                           + ["--results-dir", str(tmp_path / "t")])
    assert r.exit_code == 0, r.output
    (own,) = [json.loads(p.read_text()) for p in (tmp_path / "t" / "runs" / "default").glob("*.json")]
    assert own["weights_sha"] == trained["teacher_weights_sha"] and "teacher_weights_sha" not in own
    (entry,) = (tmp_path / "cache" / "teachers" / "cora").glob("*.pt")
    blob = torch.load(entry, weights_only=False)
    del blob["metrics"]["git_sha"]
    torch.save(blob, entry)
    old = run("c", "--set", "distillers.kd.T=3.0")
    assert "teacher_git_sha" not in old and old["teacher_test"] == trained["teacher_test"]
