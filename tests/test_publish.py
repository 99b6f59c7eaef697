"""gkd-bench import (gkd_bench.publish): which records of a sweep elsewhere may be published here."""
import copy
import json

import yaml
from click.testing import CliRunner

from gkd_bench.cli import main
from gkd_bench.publish import import_records
from gkd_bench.records import read_record, record_path, write_record
from gkd_bench.spec import canonical, expand
from tests.test_search import BASE, fake_record, two_stage_suite

SHA = "a" * 40
OTHER = "b" * 40


def commits(sha):
    """Only SHA is in this checkout's history."""
    return None if sha == SHA else f"commit {sha[:12]} is not in this checkout's history"


def suite_file(tmp_path, suite):
    path = tmp_path / f"{suite['name']}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return str(path)


def write(results, run, val=70.0, test=70.0, **extra):
    rec = {**fake_record(run, val, test), "git_sha": SHA, **extra}
    path = record_path(results, run.suite, run.run_id)
    write_record(path, rec)
    return path


def test_imports_planned_ok_records_of_clean_commits_and_refuses_the_rest(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    suite = suite_file(tmp_path, BASE)
    specs = expand(BASE)  # seeds 0-2: gcn, mlp (none), mlp <- gcn (kd, fitnet): 12 runs
    assert len(specs) == 12
    good = specs[:6]
    for s in good:
        write(src, s)
    bad = {
        specs[6].run_id: ("status 'error'", dict(status="error")),
        specs[7].run_id: ("not a clean commit", dict(git_sha=SHA + "+dirty")),
        specs[8].run_id: ("not a clean commit", dict(git_sha="unknown")),
        specs[9].run_id: ("not in this checkout's history", dict(git_sha=OTHER)),
    }
    for s in specs[6:10]:
        write(src, s, **bad[s.run_id][1])
    # a spec edited after the run: its config_id is no longer the hash of the spec
    edited = json.loads(fake_record(specs[10], 1, 1)["spec"])
    edited["student"]["hparams"]["hidden"] = 7
    write(src, specs[10], spec=canonical(edited))
    # a renamed file
    write(src, specs[11])
    record_path(src, "hs", specs[11].run_id).rename(record_path(src, "hs", "0123456789ab-s0"))
    # a run the suite does not plan: seed 7 (the suite's seeds are 0-2)
    import dataclasses
    outside = dataclasses.replace(specs[0], seed=7)
    write(src, outside)

    res = import_records(src, dst, suite, commit_check=commits)
    assert sorted(res.imported) == sorted(s.run_id for s in good)
    assert res.identical == [] and res.replaced == []
    for rid, (why, _) in bad.items():
        assert why in res.refused[rid], (rid, res.refused[rid])
    assert "not the hash of the record's spec" in res.refused[specs[10].run_id]
    assert "does not match run_id" in res.refused["0123456789ab-s0"]
    assert "not in the suite's current plan" in res.refused[outside.run_id]
    assert len(res.refused) == 7
    for s in good:  # byte for byte
        assert record_path(dst, "hs", s.run_id).read_bytes() == record_path(src, "hs", s.run_id).read_bytes()
    assert not record_path(dst, "hs", specs[6].run_id).exists()
    # again: nothing new
    again = import_records(src, dst, suite, commit_check=commits)
    assert again.imported == [] and sorted(again.identical) == sorted(s.run_id for s in good)


def test_present_records_are_kept_unless_replace_and_dry_run_writes_nothing(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    suite = suite_file(tmp_path, BASE)
    a, b, c = expand(BASE)[:3]
    for s in (a, b, c):
        write(src, s, test=80.0)
    write(dst, a, test=60.0)                    # a different ok record
    write(dst, b, status="error", test=None)    # a failed run here: the finished one replaces it
    dry = import_records(src, dst, suite, dry_run=True, commit_check=commits)
    assert dry.imported == [c.run_id] and dry.replaced == [b.run_id]
    assert "differs from the ok record already present" in dry.refused[a.run_id]
    assert not record_path(dst, "hs", c.run_id).exists()
    assert read_record(record_path(dst, "hs", b.run_id))["status"] == "error"
    res = import_records(src, dst, suite, commit_check=commits)
    assert res.imported == [c.run_id] and res.replaced == [b.run_id] and list(res.refused) == [a.run_id]
    assert read_record(record_path(dst, "hs", a.run_id))["test"] == 60.0
    assert read_record(record_path(dst, "hs", b.run_id))["test"] == 80.0
    forced = import_records(src, dst, suite, replace=True, commit_check=commits)
    assert forced.replaced == [a.run_id] and read_record(record_path(dst, "hs", a.run_id))["test"] == 80.0


def test_a_record_retagged_for_a_grown_grid_replaces_the_old_tag(tmp_path):
    """The suite's grid gained a point: `gkd-bench run` in the source re-tags the existing records
    (search columns only); importing them replaces the old tags without --replace. Any other difference
    still needs --replace."""
    from gkd_bench.search import search_columns

    src, dst = tmp_path / "src", tmp_path / "dst"
    old = two_stage_suite()
    grown = two_stage_suite({"lam": [0.3, 0.5, 0.7, 0.9]})
    path = suite_file(tmp_path, grown)
    before = {s.run_id: s for s in expand(old) if s.distiller["label"] == "kd"}
    after = {s.run_id: s for s in expand(grown) if s.distiller["label"] == "kd" and s.run_id in before}
    assert len(after) == len(before) == 6  # the same runs (config ids ignore the grid)
    for rid, s in before.items():
        write(dst, s)
        write(src, s, **search_columns(after[rid].search))
    rid = next(iter(before))
    write(src, before[rid], test=99.0, **search_columns(after[rid].search))  # also a new score: not a retag
    res = import_records(src, dst, path, commit_check=commits)
    assert sorted(res.replaced) == sorted(set(before) - {rid}) and list(res.refused) == [rid]
    for r in res.replaced:
        assert read_record(record_path(dst, "hs", r))["search_size"] == 4


def test_stage2_records_are_planned_only_for_the_point_the_source_selected(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    suite = two_stage_suite()  # kd lam {0.5, 0.7, 0.9} on seeds 0-1, the selected point on seed 2
    path = suite_file(tmp_path, suite)
    every = expand(suite, all_seeds=True)
    kd = [s for s in every if s.distiller["label"] == "kd"]
    for s in kd:
        if s.seed in (0, 1):
            write(src, s, val={0.5: 60.0, 0.7: 80.0, 0.9: 75.0}[s.distiller["hparams"]["lam"]])
    stage2 = {s.distiller["hparams"]["lam"]: s for s in kd if s.seed == 2}
    for s in stage2.values():  # seed 2 of every point: only lam 0.7's belongs to the plan
        write(src, s)
    res = import_records(src, dst, path, commit_check=commits)
    assert stage2[0.7].run_id in res.imported
    for lam in (0.5, 0.9):
        assert "not in the suite's current plan" in res.refused[stage2[lam].run_id]
    assert len(res.imported) == 7


def test_stage2_waits_when_a_stage1_record_of_its_group_is_refused(tmp_path):
    """The source selected its stage-2 point from its own stage-1 records; when one of them cannot come in
    (here: run from uncommitted code), the group's stage-2 records are refused too."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    suite = two_stage_suite()
    path = suite_file(tmp_path, suite)
    kd = [s for s in expand(suite, all_seeds=True) if s.distiller["label"] == "kd"]
    for s in kd:
        if s.seed in (0, 1):
            dirty = s.distiller["hparams"]["lam"] == 0.5 and s.seed == 0
            write(src, s, val={0.5: 60.0, 0.7: 80.0, 0.9: 75.0}[s.distiller["hparams"]["lam"]],
                  **({"git_sha": SHA + "+dirty"} if dirty else {}))
    chosen = next(s for s in kd if s.seed == 2 and s.distiller["hparams"]["lam"] == 0.7)
    write(src, chosen)
    res = import_records(src, dst, path, commit_check=commits)
    assert "stage-1 records were not all importable" in res.refused[chosen.run_id]
    assert len(res.imported) == 5 and not record_path(dst, "hs", chosen.run_id).exists()


def test_identity_checks_catch_hand_made_records(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    suite = suite_file(tmp_path, BASE)
    a, b, c, d = expand(BASE)[:4]
    write(src, a, spec=json.loads(fake_record(a, 1, 1)["spec"]))   # a dict, not the canonical JSON text
    write(src, b, dataset="citeseer")                                # a column that disagrees with the spec
    write(src, c, git_sha="HEAD")                                    # a revision name, not a commit id
    write(src, d, git_sha=SHA[:12])                                  # a short sha
    res = import_records(src, dst, suite, commit_check=publish_git_check(tmp_path))
    assert "spec (canonical JSON text)" in res.refused[a.run_id]
    assert "dataset disagree with the spec" in res.refused[b.run_id]
    assert "is not a full commit id" in res.refused[c.run_id] and "is not a full commit id" in res.refused[d.run_id]
    assert res.imported == []


def publish_git_check(tmp_path):
    """The real git check against a scratch repository with one commit (SHA-like ids are unknown to it)."""
    import subprocess

    from gkd_bench.publish import git_commit_check

    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (repo / "f").write_text("x")
    run("add", ".")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "c")
    return git_commit_check(repo)


def test_the_git_check_accepts_ancestors_of_head_only(tmp_path):
    import subprocess

    check = publish_git_check(tmp_path)
    repo = tmp_path / "repo"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert check(head) is None
    assert "unknown to this checkout" in check(SHA)
    assert "not a full commit id" in check("HEAD")


def test_dataset_filter_leaves_other_datasets_alone(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    suite = copy.deepcopy(BASE)
    suite["datasets"]["citeseer"] = {"protocol": "planetoid"}
    path = suite_file(tmp_path, suite)
    specs = expand(suite)
    for s in specs:
        write(src, s)
    import dataclasses
    unplanned = dataclasses.replace(next(s for s in specs if s.dataset == "citeseer"), seed=7)
    write(src, unplanned)  # citeseer, but not a run of the suite: refused, not "another dataset"
    nameless = specs[-1]
    write(src, nameless, dataset=None)
    rec = read_record(record_path(src, "hs", nameless.run_id))
    rec.pop("dataset")
    write_record(record_path(src, "hs", nameless.run_id), rec)
    res = import_records(src, dst, path, datasets=["citeseer"], commit_check=commits)
    assert {s.run_id for s in specs if s.dataset == "citeseer"} - {nameless.run_id} == set(res.imported)
    assert {s.run_id for s in specs if s.dataset == "cora"} == set(res.other_datasets)
    assert "not in the suite's current plan" in res.refused[unplanned.run_id]
    assert "dataset disagree with the spec" in res.refused[nameless.run_id] and len(res.refused) == 2


def test_cli_import_summarises_and_fails_clearly(tmp_path, monkeypatch):
    import gkd_bench.publish as publish

    src, dst = tmp_path / "src", tmp_path / "dst"
    suite = suite_file(tmp_path, BASE)
    specs = expand(BASE)
    write(src, specs[0])
    write(src, specs[1], git_sha=SHA + "+dirty")
    monkeypatch.setattr(publish, "git_commit_check", lambda repo=None: commits)
    r = CliRunner().invoke(main, ["import", str(src), "--suite", suite, "--results-dir", str(dst)])
    assert r.exit_code == 0, r.output
    assert "imported 1 new and 0 replacing records; 0 already identical; 1 refused" in r.output
    assert "refused 1: git_sha" in r.output and specs[1].run_id in r.output
    assert record_path(dst, "hs", specs[0].run_id).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["import", str(empty), "--suite", suite, "--results-dir", str(dst)])
    assert r.exit_code != 0 and "no records of suite 'hs'" in r.output
