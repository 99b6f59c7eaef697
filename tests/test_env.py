"""Provenance: the git sha of the checkout (never a cached failure), weights fingerprints, and the report's teacher-instance check."""
import re
import subprocess

import pytest

from gkd_bench import env


def test_git_sha_is_the_checkouts_commit_and_a_slow_git_is_asked_again(monkeypatch):
    monkeypatch.setattr(env, "_GIT_SHA", None)
    real_run = subprocess.run
    head = real_run(["git", "rev-parse", "HEAD"], cwd=env.Path(env.__file__).parent, capture_output=True,
                    text=True).stdout.strip()
    calls = []

    def slow_once(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout"))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(env.subprocess, "run", slow_once)
    assert env.git_sha() == "unknown"          # git timed out: no sha, and nothing cached
    sha = env.git_sha()                         # asked again: rev-parse + status
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", sha) and sha.startswith(head)
    n = len(calls)
    assert env.git_sha() == sha and len(calls) == n  # known now: cached for the process


def test_checkout_commit_ignores_results_but_not_code(tmp_path):
    """A sweep that rewrites tracked records or leaderboards under results/ still runs committed code;
    a change anywhere else marks the commit +dirty."""
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git is needed")
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "benchmark").mkdir()
    (tmp_path / "results" / "runs").mkdir(parents=True)
    (tmp_path / "benchmark" / "fit.py").write_text("x = 1\n")
    (tmp_path / "results" / "runs" / "r.json").write_text("{}\n")
    run("add", ".")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    sub = tmp_path / "benchmark"  # asked from a subfolder, as the package asks
    assert env.checkout_commit(sub) == head
    (tmp_path / "results" / "runs" / "r.json").write_text('{"status": "ok"}\n')
    (tmp_path / "results" / "new.json").write_text("{}\n")
    assert env.checkout_commit(sub) == head
    (tmp_path / "benchmark" / "fit.py").write_text("x = 2\n")
    assert env.checkout_commit(sub) == head + "+dirty"


def test_weights_sha_tells_bit_identical_weights_from_any_other():
    """Equal for a copy, different after a one-ulp change, a renamed entry or another dtype; covers
    0-d buffers (BatchNorm's counter) and ``None``."""
    import copy

    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    sha = env.weights_sha(model)
    assert re.fullmatch(r"[0-9a-f]{16}", sha)
    assert env.weights_sha(copy.deepcopy(model)) == sha
    nudged = copy.deepcopy(model)
    with torch.no_grad():
        w = nudged[0].weight
        w[1, 2] = torch.nextafter(w[1, 2], torch.tensor(float("inf")))
    assert env.weights_sha(nudged) != sha
    counted = copy.deepcopy(model)
    counted[1].num_batches_tracked += 1
    assert env.weights_sha(counted) != sha
    assert env.weights_sha(copy.deepcopy(model).double()) != sha
    renamed = torch.nn.Sequential()
    renamed.add_module("lin", copy.deepcopy(model[0]))
    renamed.add_module("1", copy.deepcopy(model[1]))
    assert env.weights_sha(renamed) != sha
    assert env.weights_sha(None) == ""


def test_report_lists_student_runs_whose_teacher_weights_differ():
    """gkd_bench.report.teacher_instances: silent when every fingerprint agrees (or records predate them);
    a retrained teacher (a second teacher_weights_sha, or one unlike the teacher run's weights_sha) is
    listed with its run counts."""
    import pandas as pd

    from gkd_bench.report import teacher_instances

    def rec(student, distiller, seed, sha=None, tsha=None, teacher="gat", kind=None, level=None):
        return {"dataset": "cora", "setting": "transductive", "seed": seed, "status": "ok", "student": student,
                "teacher": None if distiller == "none" else teacher, "distiller_name": distiller,
                "perturbation_kind": kind, "perturbation_level": level, "weights_sha": sha,
                "teacher_weights_sha": tsha}

    agree = [rec("gat", "none", 0, "t0"), rec("gcn", "kd", 0, "s1", "t0"), rec("gcn", "fitnet", 0, "s2", "t0"),
             rec("gat", "none", 1, "t1"), rec("gcn", "kd", 1, "s3", "t1"),
             rec("gcn", "kd", 2, "s4", None),  # a record from before the fingerprints
             # a perturbed run's teacher is trained under the same perturbation (RunSpec.teacher_run)
             rec("gat", "none", 0, "p0", kind="train_noise", level=0.3),
             rec("gcn", "kd", 0, "s9", "p0", kind="train_noise", level=0.3)]
    assert teacher_instances(pd.DataFrame(agree)) == ""
    assert teacher_instances(pd.DataFrame([{k: v for k, v in r.items() if "sha" not in k} for r in agree])) == ""
    retrained = agree + [rec("sage", "kd", 0, "s5", "tX"), rec("sage", "at", 0, "s6", "tX"),
                         rec("gcn", "kd", 3, "s7", "tA"), rec("gcn", "at", 3, "s8", "tB")]
    md = teacher_instances(pd.DataFrame(retrained))
    assert md.startswith("## Teacher instances")
    lines = [ln for ln in md.splitlines() if ln.startswith("| cora")]
    assert len(lines) == 2, md
    assert "| t0 " in lines[0] and "t0 (2 runs), tX (2 runs)" in lines[0]
    assert "| -  " in lines[1] and "tA (1 run), tB (1 run)" in lines[1]
    perturbed = teacher_instances(pd.DataFrame(retrained + [rec("gcn", "at", 0, "s10", "t0", kind="train_noise",
                                                                    level=0.3)]))
    (line,) = [ln for ln in perturbed.splitlines() if "train_noise 0.3" in ln]
    assert "| p0 " in line and "p0 (1 run), t0 (1 run)" in line
