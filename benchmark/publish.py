"""Import finished records from another results folder, checking where each came from (``gkd-bench import``).

Sweeps run in clean checkouts (other folders, other machines, a GPU box); their
records are then published into the project's ``results/``. Every number in
``results/`` must come from committed code and a configuration of the shipped
suite, so a record is imported only when all of these hold:

1. it parses, its ``status`` is ``ok`` (failed, skipped or timed-out runs are
   not published: a run that failed elsewhere is retried here) and its ``suite``
   is the one asked for;
2. its identity is intact: the file is named ``<run_id>.json``, ``run_id`` is
   ``<config_id>-s<seed>``, and ``config_id`` is the hash of its own ``spec``
   (:func:`gkd_bench.spec.config_hash`), so a renamed record, or one whose spec
   was edited, is refused (an edited score cannot be detected this way: rule 3
   and the git history of ``results/`` are what vouch for those);
3. its ``git_sha`` is a clean commit (no ``+dirty``, not ``unknown``) that is
   an ancestor of (or equal to) this checkout's ``HEAD``: the code that
   produced it is in the history being published;
4. its run is in the suite's current plan (what ``gkd-bench run --dry-run``
   lists): a stage-1 run, or a stage-2 run of the grid point selected from the
   *source* folder's stage-1 records (:func:`gkd_bench.search.stage2_specs`);
   a record of a configuration the suite no longer has is refused.

``git_sha`` comes from :func:`gkd_bench.env.checkout_commit`, which ignores changes under ``results/``.
A record already present and byte-identical is left alone (whatever its
provenance: it is published already); a present ``ok`` record with other
content is refused unless ``replace``, except when only its search columns
differ (the source re-tagged it for a changed grid: it is replaced); a
non-``ok`` one is replaced (the new run finished). Nothing is written in a
dry run.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from gkd_bench.records import read_record, record_path


@dataclass
class ImportResult:
    """What :func:`import_records` did: run ids per outcome.

    ``imported``: new here, copied (or, in a dry run, would be); ``replaced``: copied over a present record
    (a failed run here that finished there, a record re-tagged for a grown grid, or any ``ok`` record with
    ``replace``); ``identical``: already present, same bytes; ``refused``: ``{run_id: reason}`` for every
    record not imported (not ok, bad identity, provenance, outside the plan, differing from a present ok
    record without ``replace``, or a stage-2 run whose group's stage-1 records were not all importable);
    ``other_datasets``: planned runs of datasets outside the ``datasets`` filter (left alone, not refused).
    """

    imported: List[str] = field(default_factory=list)
    replaced: List[str] = field(default_factory=list)
    identical: List[str] = field(default_factory=list)
    refused: Dict[str, str] = field(default_factory=dict)
    other_datasets: List[str] = field(default_factory=list)


SHA = re.compile(r"[0-9a-f]{40}")


def checkout_root() -> Path:
    """The git checkout holding this package (the repository whose history provenance is checked against)."""
    return Path(__file__).resolve().parent.parent


def git_commit_check(repo: Optional[Path] = None) -> Callable[[str], Optional[str]]:
    """A function ``sha -> None`` (the commit is an ancestor of or equal to ``repo``'s ``HEAD``) or a reason.

    Raises:
        RuntimeError: ``repo`` is not a git checkout (or git is missing): provenance cannot be checked.
    """
    from gkd_bench.env import checkout_commit

    repo = Path(repo) if repo is not None else checkout_root()
    head = checkout_commit(repo).removesuffix("+dirty")
    if not SHA.fullmatch(head):
        raise RuntimeError(f"{repo} is not a git checkout (or git did not answer): record provenance "
                           "cannot be checked")
    known: Dict[str, Optional[str]] = {}

    def check(sha: str) -> Optional[str]:
        if not SHA.fullmatch(sha):  # a branch name, HEAD or a short sha would pass merge-base
            return f"git_sha {sha!r} is not a full commit id"
        if sha not in known:
            try:
                code = subprocess.run(["git", "merge-base", "--is-ancestor", sha, head], cwd=repo,
                                      capture_output=True, text=True, timeout=60).returncode
            except (OSError, subprocess.SubprocessError) as e:
                return f"git could not check commit {sha[:12]} ({type(e).__name__})"  # not cached: ask again
            known[sha] = None if code == 0 else (
                f"commit {sha[:12]} is not in this checkout's history (HEAD {head[:12]})" if code == 1
                else f"commit {sha[:12]} is unknown to this checkout")
        return known[sha]

    return check


def _identity_error(path: Path, rec: dict) -> Optional[str]:
    """Why ``rec`` (read from ``path``) is not the record of the run its spec describes, or None."""
    from gkd_bench.spec import canonical, config_hash

    run_id, config_id = rec.get("run_id"), rec.get("config_id")
    if run_id != path.stem:
        return f"file name {path.name} does not match run_id {run_id!r}"
    try:
        spec = json.loads(rec["spec"])
        seed = int(rec["seed"])
    except (KeyError, TypeError, ValueError):
        return "no spec (canonical JSON text) or no seed"
    if not isinstance(spec, dict) or rec["spec"] != canonical(spec):
        return "spec is not canonical JSON of a run spec"
    if run_id != f"{config_id}-s{seed}":
        return f"run_id {run_id!r} is not config_id-s<seed>"
    if config_hash(spec) != config_id:
        return f"config_id {config_id} is not the hash of the record's spec ({config_hash(spec)})"
    try:
        described = {"seed": spec["seed"], "suite": spec["suite"], "dataset": spec["dataset"],
                     "setting": spec["setting"], "student": spec["student"]["label"],
                     "distiller": spec["distiller"]["label"]}
    except (KeyError, TypeError):
        return "spec lacks seed, suite, dataset, setting, student or distiller"
    wrong = sorted(k for k, v in described.items() if rec.get(k) != v)
    return f"column(s) {', '.join(wrong)} disagree with the spec" if wrong else None


def _retagged(present: dict, new: dict, planned) -> bool:
    """The same run with other search columns only (:data:`gkd_bench.search.COLUMNS`), and the new ones are
    the current plan's (``planned``: its :class:`~gkd_bench.spec.RunSpec`): the source's ``gkd-bench run``
    re-tagged it for a changed grid (:func:`gkd_bench.search.sync_records`). ``search_seeds`` may hold more
    seeds than the plan's (sync keeps the union)."""
    from gkd_bench.search import COLUMNS, search_columns

    strip = lambda r: {k: v for k, v in r.items() if k not in COLUMNS}  # noqa: E731
    want = search_columns(getattr(planned, "search", None))
    current = all(new.get(k) == want.get(k) for k in COLUMNS if k != "search_seeds")
    return current and strip(present) == strip(new)


def planned_runs(suite: str, source: Path, datasets: Optional[Sequence[str]] = None) -> dict:
    """``{run_id: RunSpec}`` of ``suite``'s current plan over all its seeds: stage-1 runs and the stage-2
    runs that ``source``'s stage-1 records decide (as ``gkd-bench run --dry-run --results-dir SOURCE``
    lists them); ``datasets`` narrows it as ``run --dataset`` does."""
    from gkd_bench.search import is_stage2, stage2_specs
    from gkd_bench.spec import expand, load_suite

    specs = expand(load_suite(suite), datasets=list(datasets) if datasets else None, all_seeds=True)
    decided, _ = stage2_specs(source, specs)
    return {s.run_id: s for s in [s for s in specs if not is_stage2(s)] + decided}


def import_records(source, dest, suite: str, datasets: Optional[Sequence[str]] = None, replace: bool = False,
                   dry_run: bool = False, commit_check: Optional[Callable[[str], Optional[str]]] = None,
                   suite_name: Optional[str] = None) -> ImportResult:
    """Copy ``source/runs/<suite>/*.json`` into ``dest/runs/<suite>/`` under the rules of the module docstring.

    Args:
        source: a results folder (``runs/<suite>/`` inside) written by sweeps elsewhere.
        dest: this project's results folder.
        suite: a shipped suite name or a YAML file (its plan is rule 4).
        datasets: only records of these datasets (entry labels or registry names, as ``run --dataset``).
        replace: overwrite a present ``ok`` record whose content differs.
        dry_run: decide everything, write nothing.
        commit_check: ``sha -> None or reason`` (default :func:`git_commit_check` of this checkout).
        suite_name: the suite's ``name`` (default: read from the suite).

    Returns:
        :class:`ImportResult`.

    Raises:
        FileNotFoundError: ``source`` has no ``runs/<suite>/`` folder.
        RuntimeError: provenance cannot be checked (this package is not in a git checkout).
        gkd_bench.spec.SuiteError: unknown suite or dataset.
    """
    from gkd_bench.records import atomic_replace
    from gkd_bench.search import _stage_key, is_stage2
    from gkd_bench.spec import load_suite

    name = suite_name or load_suite(suite)["name"]
    source, dest = Path(source), Path(dest)
    folder = source / "runs" / name
    if not folder.is_dir():
        raise FileNotFoundError(f"no records of suite {name!r} under {source} (expected {folder}/)")
    check = commit_check or git_commit_check()
    plan = planned_runs(suite, source)
    wanted = planned_runs(suite, source, datasets) if datasets else plan
    wanted_datasets = {s.dataset for s in wanted.values()}
    out = ImportResult()
    copies = []  # (run_id, source path, target path), written once every record is decided
    for path in sorted(folder.glob("*.json")):
        rec = read_record(path)
        rid = path.stem
        if rec is None:
            out.refused[rid] = "unreadable (not a JSON object)"
            continue
        if datasets and rid not in wanted and (rid in plan or ("dataset" in rec and
                                                               rec["dataset"] not in wanted_datasets)):
            out.other_datasets.append(rid)  # outside the filter: left alone, whatever it holds
            continue
        target = record_path(dest, name, rid)
        if target.is_file() and target.read_bytes() == path.read_bytes():
            out.identical.append(rid)  # already published as it is
            continue
        if rec.get("status") != "ok":
            out.refused[rid] = f"status {rec.get('status')!r}"
            continue
        if rec.get("suite") != name:
            out.refused[rid] = f"suite {rec.get('suite')!r}, not {name!r}"
            continue
        reason = _identity_error(path, rec)
        if reason is None:
            sha = str(rec.get("git_sha") or "unknown")
            if sha == "unknown" or sha.endswith("+dirty"):
                reason = f"git_sha {sha!r}: not a clean commit"
            else:
                reason = check(sha)
        if reason is None and rid not in plan:
            reason = "not in the suite's current plan (configuration or stage-2 selection)"
        if reason is None and target.is_file():
            present = read_record(target)
            if present is not None and present.get("status") == "ok" and not replace \
                    and not _retagged(present, rec, plan[rid]):
                reason = "differs from the ok record already present (use --replace)"
        if reason is not None:
            out.refused[rid] = reason
            continue
        (out.replaced if target.is_file() else out.imported).append(rid)
        copies.append((rid, path, target))
    # the source decided stage 2 from its own stage-1 records: a group with a stage-1 record that is not
    # coming in (refused) may select another point here, so its stage-2 records wait
    tainted = {_stage_key(plan[r]) for r in out.refused if r in plan and not is_stage2(plan[r])
               and (plan[r].search or {}).get("tune_seeds") is not None}
    keep = []
    for rid, path, target in copies:
        spec = plan[rid]
        if is_stage2(spec) and _stage_key(spec) in tainted:
            out.refused[rid] = "stage 2 of a search group whose stage-1 records were not all importable"
            (out.replaced if rid in out.replaced else out.imported).remove(rid)
        else:
            keep.append((path, target))
    if not dry_run:
        for path, target in keep:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_replace(target, lambda tmp, src=path: shutil.copyfile(src, tmp))
    return out
