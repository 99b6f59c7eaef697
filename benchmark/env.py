"""Environment stamp for every record: versions, git sha, CPU, threads, device, hardware id."""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Optional


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else ``platform.processor()`` or ``platform.machine()``
    (recorded per run)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_GIT_SHA: Optional[str] = None


def checkout_commit(path) -> str:
    """Commit of the git checkout holding ``path`` (``+dirty`` when tracked files outside ``results/`` have
    uncommitted changes), or ``unknown`` (not a git checkout, git missing, or git too slow to answer within
    a minute).

    ``results/`` is left out because a sweep changes it (a re-run replaces a tracked record, a report
    rewrites a leaderboard) without changing the code that produces the numbers; until 2026-11-22 it was
    included, so some published records say ``+dirty`` for that reason alone.
    """
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                             timeout=60).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top)", ":(top,exclude)results"], cwd=path,
                               capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def git_sha() -> str:
    """:func:`checkout_commit` of the gkd-bench checkout, cached per process once known: a process runs
    the code it imported, so a commit made while a sweep runs does not relabel that sweep's later records.
    A failure is not cached (a loaded machine can make ``git status`` slow; the next record asks again)."""
    global _GIT_SHA
    if _GIT_SHA is not None:
        return _GIT_SHA
    sha = checkout_commit(Path(__file__).resolve().parent)
    if sha != "unknown":
        _GIT_SHA = sha
    return sha


def weights_sha(model) -> str:
    """Fingerprint of a model's weights: sha1 (first 16 hex digits) over every ``state_dict`` entry's
    name, dtype, shape and bytes, in ``state_dict`` order; ``""`` for ``None``.

    Records store it as ``weights_sha`` (the trained model; an online run's whole ensemble) and
    ``teacher_weights_sha`` (the teacher the run distilled from), so records that share a teacher
    instance can be told apart from records whose teacher was retrained elsewhere: the same code and
    seed on another machine or torch build can train different weights (``teacher_git_sha`` is then
    the same). Equal fingerprints mean bit-identical weights, up to sha1 collisions.
    """
    if model is None:
        return ""
    import torch

    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def environment(device: str = "cpu") -> dict:
    """Flat dict of provenance fields stored in every record."""
    import dgl
    import torch

    import gkd_bench

    threads = torch.get_num_threads()
    dev = device if device == "cpu" else f"{device}:{torch.cuda.get_device_name(0)}"
    cores = os.cpu_count() or 0
    hw = f"{cpu_model()}|{cores}|{threads}|{dev}"
    return {
        "gkd_bench_version": gkd_bench.__version__,
        "git_sha": git_sha(),
        "torch_version": torch.__version__,
        "dgl_version": dgl.__version__,
        "python_version": platform.python_version(),
        "device": dev,
        "cpu_model": cpu_model(),
        "cpu_cores": cores,
        "threads": threads,
        "hw_id": hashlib.sha1(hw.encode()).hexdigest()[:10],
    }
