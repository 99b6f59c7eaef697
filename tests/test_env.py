"""Provenance stamp (gkd_bench.env): the git sha of the checkout, never a cached failure."""
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
