"""Provenance stamp (gkd_bench.env): the git sha of the checkout, never a cached failure."""
import re
import subprocess

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
