"""Hyperparameter search: suite expansion, selection on validation from records, and the CLI end to end."""
import copy
import itertools
import json
import math

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from gkd_bench.records import read_record, record_path, write_record
from gkd_bench.report import _selected_text, leaderboard, load_runs, write_report
from gkd_bench.robustness import perturbation_columns
from gkd_bench.search import (COLUMNS, is_stage2, search_columns, search_table, select, stage2_specs, sync_records,
                              tune_score)
from gkd_bench.spec import SuiteError, canonical, expand, load_suite
from tests.conftest import requires_data

KD_GRID = {"lam": [0.8, 0.9], "T": [4.0, 5.0]}
BASE = {
    "name": "hs", "seeds": "0-2", "datasets": {"cora": {"protocol": "planetoid"}},
    "train": {"epochs": 5, "lr": 0.01},
    "models": {"gcn": {"model": "gcn", "hidden": 32}, "mlp": {"model": "mlp"}},
    "distillers": {"none": {}, "kd": {"distiller": "kd", "lam": 0.9, "T": 4.0},
                   "fitnet": {"beta": 100.0}},
    "experiments": [{"student": ["gcn", "mlp"], "distiller": "none"},
                    {"teacher": "gcn", "student": "mlp", "distiller": ["kd", "fitnet"]}],
}


def with_search(suite, where, label, grid):
    out = copy.deepcopy(suite)
    out[where][label] = {**out[where][label], "search": copy.deepcopy(grid)}
    return out


def by_label(specs):
    return {(s.search or {}).get("label", f"{s.student['label']}/{s.distiller['label']}"): s for s in specs}


# ----------------------------------------------------------------------------------------- expansion
def test_grid_expands_to_one_config_per_point_with_labels_and_group():
    fixed = expand(BASE)
    specs = expand(with_search(BASE, "distillers", "kd", KD_GRID))
    kd = [s for s in specs if s.distiller["label"] == "kd"]
    n_points = math.prod(len(v) for v in KD_GRID.values())
    assert len({s.config_id for s in kd}) == n_points
    assert len(kd) == n_points * 3  # seeds 0-2
    want = {f"kd[T={T:g},lam={lam:g}]" for lam, T in itertools.product(KD_GRID["lam"], KD_GRID["T"])}
    assert {s.search["label"] for s in kd} == want
    assert {s.search["group"] for s in kd} == {"kd"}
    assert {s.search["size"] for s in kd} == {n_points}
    assert sorted({s.search["index"] for s in kd}) == list(range(n_points))
    for s in kd:  # the resolved hparams are the point's values; the spec keeps the entry label
        assert s.distiller["label"] == "kd"
        assert (s.distiller["hparams"]["lam"], s.distiller["hparams"]["T"]) == (
            s.search["params"]["distiller"]["lam"], s.search["params"]["distiller"]["T"])
        assert s.search["seeds"] == [0, 1, 2]
    # grid order: params sorted by name, the first slowest, values as written
    order = sorted({(s.search["index"], s.search["label"]) for s in kd})
    assert [lbl for _, lbl in order] == [f"kd[T={T:g},lam={lam:g}]" for T in KD_GRID["T"] for lam in KD_GRID["lam"]]
    # everything outside the search is exactly as without it
    assert [s.run_id for s in fixed if s.distiller["label"] != "kd"] == \
           [s.run_id for s in specs if s.distiller["label"] != "kd"]
    assert all(s.search is None for s in specs if s.distiller["label"] != "kd")


def test_grid_point_equal_to_a_fixed_config_keeps_its_config_id_and_run_ids():
    fixed = [s for s in expand(BASE) if s.distiller["label"] == "kd"]
    searched = [s for s in expand(with_search(BASE, "distillers", "kd", KD_GRID))
                if s.distiller["label"] == "kd"]
    same = [s for s in searched if s.distiller["hparams"] == fixed[0].distiller["hparams"]]
    assert [s.run_id for s in same] == [s.run_id for s in fixed]
    assert "search" not in fixed[0].to_dict() and same[0].to_dict()["search"]["group"] == "kd"
    others = {s.config_id for s in searched} - {fixed[0].config_id}
    assert len(others) == len({s.config_id for s in searched}) - 1


def test_search_in_overrides_and_set_and_null_turns_it_off():
    over = {**BASE, "overrides": {"cora": {"distillers": {"kd": {"search": {"lam": [0.5, 0.6, 0.7]}}}}}}
    kd = [s for s in expand(over, seeds="0") if s.distiller["label"] == "kd"]
    assert sorted(s.search["label"] for s in kd) == ["kd[lam=0.5]", "kd[lam=0.6]", "kd[lam=0.7]"]
    assert {s.distiller["hparams"]["T"] for s in kd} == {4.0}  # the entry's fixed values stay
    kd = [s for s in expand(BASE, seeds="0", sets=["distillers.kd.search.T=[1.0,2.0]"])
          if s.distiller["label"] == "kd"]
    assert sorted(s.search["label"] for s in kd) == ["kd[T=1]", "kd[T=2]"]
    off = expand(with_search(BASE, "distillers", "kd", KD_GRID), sets=["distillers.kd.search=null"])
    assert [s.run_id for s in off] == [s.run_id for s in expand(BASE)]


def test_model_search_with_train_options_and_two_searched_entries():
    suite = with_search(BASE, "models", "mlp", {"dropout": [0.0, 0.5], "train.lr": [0.01, 0.05]})
    suite = with_search(suite, "distillers", "kd", {"lam": [0.8, 0.9]})
    specs = expand(suite, seeds="0")
    none = [s for s in specs if s.student["label"] == "mlp" and s.distiller["label"] == "none"]
    assert len(none) == 4
    assert {(s.student["hparams"]["dropout"], s.student["train"]["lr"]) for s in none} == \
           set(itertools.product([0.0, 0.5], [0.01, 0.05]))
    assert {s.search["group"] for s in none} == {"mlp"}
    kd = [s for s in specs if s.distiller["label"] == "kd"]
    assert len(kd) == 8 and {s.search["size"] for s in kd} == {8} and {s.search["group"] for s in kd} == {"mlp+kd"}
    assert sorted(s.search["index"] for s in kd) == list(range(8))
    assert "mlp[dropout=0,train.lr=0.01]+kd[lam=0.8]" in {s.search["label"] for s in kd}
    assert all(s.teacher["hparams"] == kd[0].teacher["hparams"] for s in kd)


@pytest.mark.parametrize("where,label,search,match", [
    ("distillers", "kd", [0.8, 0.9], r"distiller 'kd': search must be a mapping"),
    ("distillers", "kd", {"lam": 0.8}, r"distiller 'kd': search key 'lam' must be a list"),
    ("distillers", "kd", {"lam": []}, r"distiller 'kd': search key 'lam' has an empty list"),
    ("distillers", "kd", {"temperature": [1.0]}, r"distiller 'kd': search key 'temperature' is not a hyperparam"),
    ("distillers", "kd", {"lam": [0.8, 0.8]}, r"distiller 'kd': search key 'lam' repeats a value"),
    ("models", "mlp", {"model": ["gcn"]}, r"model 'mlp': search key 'model' is not a hyperparameter"),
    ("models", "mlp", {"train.lrate": [0.1]}, r"model 'mlp': search key 'train.lrate' is not a train option"),
    ("models", "mlp", {"in_dim": [3]}, r"model 'mlp': search key 'in_dim' is not a hyperparameter"),
])
def test_malformed_search_is_a_suite_error_naming_entry_and_key(where, label, search, match):
    with pytest.raises(SuiteError, match=match):
        expand(with_search(BASE, where, label, search))


def test_search_on_a_teacher_is_rejected():
    with pytest.raises(SuiteError, match=r"model 'gcn' is a teacher .* one fixed configuration"):
        expand(with_search(BASE, "models", "gcn", {"hidden": [16, 32]}))
    # the teacher's own entry without search, a searched copy as a student: fine
    suite = copy.deepcopy(BASE)
    suite["models"]["gcn-s"] = {"model": "gcn", "search": {"hidden": [16, 32]}}
    suite["experiments"].append({"teacher": "gcn", "student": "gcn-s", "distiller": "kd"})
    specs = [s for s in expand(suite, seeds="0") if s.student["label"] == "gcn-s"]
    assert len(specs) == 2 and {s.teacher["label"] for s in specs} == {"gcn"}


@pytest.mark.parametrize("name", ["gcrd", "gcrd-available"])
def test_shipped_gcrd_suites_search_their_reference_grids(name):
    suite = load_suite(name)
    specs = expand(suite, seeds="0")
    groups = {}
    for s in specs:
        if s.search:
            groups.setdefault((s.dataset, s.student["label"], s.search["group"]), set()).add(s.config_id)
    searched = {g for _, _, g in groups}
    assert {"kd", "fitnet", "at", "lsp", "gsp", "gcrd"} <= searched
    for (ds, student, group), cids in groups.items():  # one config per grid point, nothing searched on teachers
        any_spec = next(s for s in specs if s.search and s.search["group"] == group and s.dataset == ds
                        and s.student["label"] == student)  # an experiment may set its own grid (gcrd: SIGN)
        assert len(cids) == any_spec.search["size"], (ds, student, group)
    assert all(s.teacher is None or not (s.search and "teacher" in s.search["grid"]) for s in specs)


# ----------------------------------------------------------------------------------------- selection
def fake_record(spec, val, test, status="ok", tag=True):
    rec = {"run_id": spec.run_id, "config_id": spec.config_id, "suite": spec.suite, "dataset": spec.dataset,
           "split": spec.protocol, "setting": spec.setting,
           "teacher": spec.teacher["label"] if spec.teacher else None,
           "student": spec.student["label"], "student_model": spec.student["model"],
           "distiller": spec.distiller["label"], "distiller_name": spec.distiller["name"],
           "hparams": spec.hparams_json, "seed": spec.seed, "spec": canonical(spec.to_dict()),
           "status": status, "metric": "accuracy", "val": val, "test": test, "hw_id": "hw0"}
    rec.update(perturbation_columns(spec.perturbation))
    if tag:
        rec.update(search_columns(spec.search))
    return rec


def write_all(results, specs, scores, skip=(), tag=True):
    """scores: callable(spec) -> (val, test); skip: run ids left without a record."""
    for s in specs:
        if s.run_id in skip:
            continue
        val, test = scores(s)
        write_record(record_path(results, s.suite, s.run_id), fake_record(s, val, test, tag=tag))


def kd_suite(grid=None):
    return with_search(BASE, "distillers", "kd", grid or {"lam": [0.5, 0.7, 0.9]})


def lam_scores(val_by_lam, test_by_lam, other=(70.0, 70.0)):
    def f(s):
        if s.distiller["label"] == "kd":
            lam = s.distiller["hparams"]["lam"]
            return val_by_lam[lam] + 0.1 * s.seed, test_by_lam[lam] + 0.1 * s.seed
        return other[0] + 0.1 * s.seed, other[1] + 0.1 * s.seed
    return f


def test_selection_uses_validation_never_test(tmp_path):
    specs = expand(kd_suite())
    # lam 0.7: best val, worst test; lam 0.9: best test, lower val
    write_all(tmp_path, specs, lam_scores({0.5: 60.0, 0.7: 80.0, 0.9: 75.0}, {0.5: 70.0, 0.7: 65.0, 0.9: 90.0}))
    runs = load_runs(tmp_path, ["hs"])
    table = search_table(runs)
    assert len(table) == 3 and table["selected"].sum() == 1
    sel = table[table["selected"]].iloc[0]
    assert sel["search_label"] == "kd[lam=0.7]"
    assert sel["val_mean"] == table["val_mean"].max() and sel["test_mean"] < table["test_mean"].max()
    assert not table["provisional"].any() and (table["n"] == 3).all()
    lb = leaderboard(runs)
    kd = lb[lb["distiller"] == "kd"]
    assert len(kd) == 1
    assert kd["search_selected"].iloc[0] == "kd[lam=0.7]"
    assert kd["test_mean"].iloc[0] == pytest.approx(sel["test_mean"])
    assert (kd["search_candidates"].iloc[0], kd["search_size"].iloc[0]) == (3, 3)
    assert not kd["search_provisional"].iloc[0]
    # changing test scores alone never changes the selection
    for perm in itertools.permutations([10.0, 50.0, 99.0]):
        t = dict(zip([0.5, 0.7, 0.9], perm))
        write_all(tmp_path, specs, lam_scores({0.5: 60.0, 0.7: 80.0, 0.9: 75.0}, t))
        table = search_table(load_runs(tmp_path, ["hs"]))
        assert table.loc[table["selected"], "search_label"].tolist() == ["kd[lam=0.7]"]


def test_select_tie_breaks_more_seeds_then_earlier_point():
    pts = [{"search_index": 0, "n": 2, "val_mean": 80.0}, {"search_index": 1, "n": 3, "val_mean": 80.0},
           {"search_index": 2, "n": 3, "val_mean": 80.0}, {"search_index": 3, "n": 0, "val_mean": float("nan")}]
    assert select(pts) == 1
    assert select([{**p, "n": 3} for p in pts[:3]]) == 0
    assert select([{"search_index": 0, "n": 3, "val_mean": float("nan")},
                   {"search_index": 1, "n": 1, "val_mean": 10.0}]) == 1
    assert select([{"search_index": 0, "n": 0, "val_mean": float("nan")}]) is None


def test_select_treats_float32_noise_as_a_tie():
    """Equal fractions of correct validation nodes stored as float32 percentages differ by ~1e-6 after
    averaging (cornell: 94/59 per seed): a tie, so the earlier grid point wins; one node apart is not."""
    import numpy as np

    def mean_val(corrects, n_val=59):  # what the records hold: a float32 accuracy per seed, mean over seeds
        return tune_score([100.0 * float(np.float32(c) / np.float32(n_val)) for c in corrects])

    a, b = mean_val([30, 31, 33]), mean_val([28, 31, 35])  # 94 of 177 correct both
    assert a != b and abs(a - b) < 1e-5  # float noise: without a tolerance the higher one would win
    pts = [{"search_index": 0, "n": 3, "val_mean": min(a, b)}, {"search_index": 1, "n": 3, "val_mean": max(a, b)}]
    assert select(pts) == 0
    pts[1]["val_mean"] = mean_val([31, 31, 33])  # one node more: a real difference
    assert select(pts) == 1


def test_missing_seeds_make_the_selection_provisional(tmp_path):
    specs = expand(kd_suite())
    missing = next(s for s in specs if s.distiller["label"] == "kd" and s.distiller["hparams"]["lam"] == 0.5
                   and s.seed == 2)
    write_all(tmp_path, specs, lam_scores({0.5: 60.0, 0.7: 80.0, 0.9: 75.0}, {0.5: 70.0, 0.7: 65.0, 0.9: 90.0}),
              skip={missing.run_id})
    runs = load_runs(tmp_path, ["hs"])
    table = search_table(runs)
    assert table["provisional"].all()
    assert table.loc[table["search_label"] == "kd[lam=0.5]", "n"].item() == 2
    lb = leaderboard(runs)
    assert lb.loc[lb["distiller"] == "kd", "search_provisional"].item()
    paths = write_report(tmp_path, "hs")
    md = (tmp_path / "hs" / "LEADERBOARD.md").read_text()
    assert "lam=0.7 *" in md and "sel (provisional)" in md
    # a grid point without any record is listed and counts as not compared
    write_all(tmp_path, specs, lam_scores({0.5: 60.0, 0.7: 80.0, 0.9: 75.0}, {0.5: 70.0, 0.7: 65.0, 0.9: 90.0}))
    for s in specs:
        if s.distiller["label"] == "kd" and s.distiller["hparams"]["lam"] == 0.9:
            record_path(tmp_path, s.suite, s.run_id).unlink()
    runs = load_runs(tmp_path, ["hs"])
    table = search_table(runs)
    assert len(table) == 3 and table.loc[table["search_label"] == "kd[lam=0.9]", "n"].item() == 0
    row = leaderboard(runs).query("distiller == 'kd'").iloc[0]
    assert (row["search_candidates"], row["search_size"], row["search_provisional"]) == (2, 3, True)
    assert tmp_path / "hs" / "search.csv" in paths


def test_gains_are_paired_against_the_selected_rows(tmp_path):
    suite = kd_suite()
    specs = expand(suite)
    rng = {s.run_id: i for i, s in enumerate(specs)}

    def scores(s):
        noise = (rng[s.run_id] * 7919 % 13) / 10  # differs per run, fixed per run
        if s.distiller["label"] == "kd":
            lam = s.distiller["hparams"]["lam"]
            return {0.5: 60.0, 0.7: 80.0, 0.9: 75.0}[lam] + noise, {0.5: 71.0, 0.7: 72.0, 0.9: 79.0}[lam] + noise
        if s.distiller["label"] == "fitnet":
            return 70.0 + noise, 74.0 + noise
        return 65.0 + noise, 69.0 + noise + s.seed

    write_all(tmp_path, specs, scores)
    runs = load_runs(tmp_path, ["hs"])
    lb = leaderboard(runs)
    ok = runs.set_index("run_id")
    by = lambda pred: {s.seed: ok.loc[s.run_id, "test"] for s in specs if pred(s)}  # noqa: E731
    none = by(lambda s: s.student["label"] == "mlp" and s.distiller["label"] == "none")
    kd_sel = by(lambda s: s.distiller["label"] == "kd" and s.distiller["hparams"]["lam"] == 0.7)
    fit = by(lambda s: s.distiller["label"] == "fitnet")
    kd_row = lb[lb["distiller"] == "kd"].iloc[0]
    fit_row = lb[lb["distiller"] == "fitnet"].iloc[0]
    assert kd_row["gain_vs_none"] == pytest.approx(sum(kd_sel[k] - none[k] for k in none) / len(none))
    assert fit_row["gain_vs_kd"] == pytest.approx(sum(fit[k] - kd_sel[k] for k in fit) / len(fit))
    assert pd.isna(fit_row.get("search_selected"))


def test_kd_plus_x_pairs_with_the_kd_run_of_its_own_kd_settings(tmp_path):
    """gain_vs_kd of a kd+x row is against the kd config with the same lam / T when the suite has one (the KD
    inside kd+x), not against the selected kd point; other rows keep pairing with the row labelled `kd`."""
    suite = kd_suite()
    suite["distillers"]["kd-ref"] = {"distiller": "kd", "lam": 0.9, "T": 4.0, "kl_reduction": "elementwise"}
    suite["distillers"]["kd+fitnet"] = {"lam": 0.9, "T": 4, "beta": 100.0}  # T 4 and 4.0: the same KD
    suite["experiments"][1]["distiller"] = ["kd", "kd-ref", "fitnet", "kd+fitnet"]
    specs = expand(suite)

    def scores(s):
        label = s.distiller["label"]
        if label == "kd":
            lam = s.distiller["hparams"]["lam"]
            return {0.5: 60.0, 0.7: 80.0, 0.9: 75.0}[lam], {0.5: 71.0, 0.7: 72.0, 0.9: 79.0}[lam] + 0.5 * s.seed
        base = {"kd-ref": 66.0, "fitnet": 74.0, "kd+fitnet": 69.0, "none": 65.0}[label]
        return 70.0, base + s.seed * (2.0 if label == "kd-ref" else 1.0)

    write_all(tmp_path, specs, scores)
    lb = leaderboard(load_runs(tmp_path, ["hs"])).set_index("distiller")
    # kd+fitnet - kd-ref per seed: 69 + s - (66 + 2 s) = 3 - s -> mean over seeds 0-2 is 2
    assert lb.loc["kd+fitnet", "gain_vs_kd"] == pytest.approx(2.0)
    # fitnet - selected kd (lam 0.7): 74 + s - (72 + 0.5 s) -> mean 2 + 0.5 * 1 = 2.5
    assert lb.loc["fitnet", "gain_vs_kd"] == pytest.approx(2.5)
    # a seed missing from the selected kd point: that seed has no baseline (never another kd config's seed)
    lam07_s2 = next(sp for sp in specs if sp.distiller["label"] == "kd" and sp.distiller["hparams"]["lam"] == 0.7
                    and sp.seed == 2)
    rec = read_record(record_path(tmp_path, "hs", lam07_s2.run_id))
    record_path(tmp_path, "hs", lam07_s2.run_id).unlink()
    lb = leaderboard(load_runs(tmp_path, ["hs"])).set_index("distiller")
    assert lb.loc["fitnet", "gain_vs_kd"] == pytest.approx(2.25)  # seeds 0, 1: 2 + 0.5 s
    write_record(record_path(tmp_path, "hs", lam07_s2.run_id), rec)
    # without the kd-ref runs, kd+fitnet falls back to the selected kd: 69 + s - (72 + 0.5 s) -> -2.5
    for sp in specs:
        if sp.distiller["label"] == "kd-ref":
            record_path(tmp_path, sp.suite, sp.run_id).unlink()
    lb = leaderboard(load_runs(tmp_path, ["hs"])).set_index("distiller")
    assert lb.loc["kd+fitnet", "gain_vs_kd"] == pytest.approx(-2.5)
    assert lb.loc["fitnet", "gain_vs_kd"] == pytest.approx(2.5)


def test_searched_student_pairs_with_the_selected_none_row(tmp_path):
    suite = with_search(BASE, "models", "mlp", {"dropout": [0.1, 0.3]})
    specs = expand(suite)

    def scores(s):
        d = s.student["hparams"]["dropout"] if s.student["label"] == "mlp" else 0.0
        base = {"none": 60.0, "kd": 70.0, "fitnet": 65.0}[s.distiller["label"]]
        # none prefers dropout 0.3 on val, kd prefers 0.1
        v = base + (10 * d if s.distiller["label"] == "none" else -10 * d)
        return v + s.seed, base + 5 * d + s.seed

    write_all(tmp_path, specs, scores)
    lb = leaderboard(load_runs(tmp_path, ["hs"]))
    none = lb[(lb["distiller"] == "none") & (lb["student"] == "mlp")].iloc[0]
    kd = lb[lb["distiller"] == "kd"].iloc[0]
    assert none["search_selected"] == "mlp[dropout=0.3]" and kd["search_selected"] == "mlp[dropout=0.1]"
    assert kd["gain_vs_none"] == pytest.approx(kd["test_mean"] - none["test_mean"])


def test_reused_records_are_tagged_and_join_the_search(tmp_path):
    fixed = expand(BASE)  # kd fixed at lam 0.9, T 4: run before the search existed
    write_all(tmp_path, fixed, lambda s: (90.0, 50.0) if s.distiller["label"] == "kd" else (70.0, 70.0), tag=False)
    searched = expand(with_search(BASE, "distillers", "kd", KD_GRID))
    assert sync_records(tmp_path, searched) == 3  # the three seeds of the shared grid point
    assert sync_records(tmp_path, searched) == 0  # idempotent
    for s in fixed:
        rec = read_record(record_path(tmp_path, s.suite, s.run_id))
        assert (rec.get("search_label") == "kd[T=4,lam=0.9]") == (s.distiller["label"] == "kd")
    new = [s for s in searched if s.distiller["label"] == "kd" and not record_path(tmp_path, s.suite, s.run_id).exists()]
    write_all(tmp_path, new, lambda s: (80.0, 95.0))
    table = search_table(load_runs(tmp_path, ["hs"]))
    assert len(table) == 4 and (table["n"] == 3).all()
    assert table.loc[table["selected"], "search_label"].tolist() == ["kd[T=4,lam=0.9]"]
    # the entry's search removed again: the tag goes, the record stays done
    assert sync_records(tmp_path, expand(BASE)) == 3
    assert all(k not in read_record(record_path(tmp_path, s.suite, s.run_id)) for s in fixed for k in COLUMNS)


def test_train_time_perturbed_copies_follow_the_clean_selection(tmp_path):
    suite = {**kd_suite(), "robustness": {"train_noise": [0.5], "train_seeds": "0-1"}}
    specs = expand(suite)
    pert = [s for s in specs if s.perturbation and s.distiller["label"] == "kd"]
    assert pert and {tuple(s.search["seeds"]) for s in pert} == {(0, 1)}

    def scores(s):
        lam = s.distiller["hparams"].get("lam")
        if s.distiller["label"] != "kd":
            return 70.0, 70.0
        if s.perturbation:  # on noisy data lam 0.5 would win on val
            return {0.5: 90.0, 0.7: 50.0, 0.9: 40.0}[lam], 60.0
        return {0.5: 60.0, 0.7: 80.0, 0.9: 75.0}[lam], 75.0

    write_all(tmp_path, specs, scores)
    table = search_table(load_runs(tmp_path, ["hs"]))
    sel = table[table["selected"]]
    assert set(sel["search_label"]) == {"kd[lam=0.7]"} and len(sel) == 2  # clean and perturbed group
    assert not table["provisional"].any()  # perturbed copies only expect the train seeds


# ----------------------------------------------------------------------------------------- two-stage search
def two_stage_suite(grid=None, seeds="0-1"):
    return with_search(BASE, "distillers", "kd", {**(grid or {"lam": [0.5, 0.7, 0.9]}), "seeds": seeds})


def test_two_stage_expansion_runs_every_point_on_the_search_seeds_only():
    one = expand(kd_suite())
    specs = expand(two_stage_suite())
    kd = [s for s in specs if s.distiller["label"] == "kd"]
    assert len(kd) == 3 * 2 and {s.seed for s in kd} == {0, 1}
    assert all(s.search["tune_seeds"] == [0, 1] and s.search["seeds"] == [0, 1, 2] for s in kd)
    # the seeds key enters no config id: the same configurations and run ids as the one-stage search
    assert {s.run_id for s in kd} == {s.run_id for s in one if s.distiller["label"] == "kd" and s.seed < 2}
    assert {s.run_id for s in specs if s.distiller["label"] != "kd"} == \
           {s.run_id for s in one if s.distiller["label"] != "kd"}
    every = expand(two_stage_suite(), all_seeds=True)
    assert [s.run_id for s in every] == [s.run_id for s in one]
    assert {s.run_id for s in every if is_stage2(s)} == \
           {s.run_id for s in one if s.distiller["label"] == "kd" and s.seed == 2}
    assert search_columns(kd[0].search)["search_tune_seeds"] == "[0,1]"
    assert "search_tune_seeds" not in search_columns(one[-1].search)
    # search seeds equal to every seed: one stage, nothing deferred
    assert not any(is_stage2(s) for s in expand(two_stage_suite(seeds="0-2"), all_seeds=True))


def stage_scores(s):
    """kd: lam 0.7 wins on val over seeds 0-1; lam 0.9 has the best test everywhere and the best val on
    seed 2 (and the best val mean over all three seeds)."""
    if s.distiller["label"] != "kd":
        return 70.0, 70.0
    lam = s.distiller["hparams"]["lam"]
    if s.seed == 2:
        return {0.5: 50.0, 0.7: 60.0, 0.9: 99.0}[lam], {0.5: 60.0, 0.7: 61.0, 0.9: 99.0}[lam]
    return {0.5: 70.0, 0.7: 80.0, 0.9: 78.0}[lam] + s.seed, {0.5: 70.0, 0.7: 65.0, 0.9: 90.0}[lam] + s.seed


def test_stage2_runs_the_point_selected_on_the_search_seeds(tmp_path):
    suite = two_stage_suite()
    every = expand(suite, all_seeds=True)
    stage1 = [s for s in every if not is_stage2(s)]
    assert stage2_specs(tmp_path, every) == ([], [s for s in every if is_stage2(s)])  # nothing recorded yet
    write_all(tmp_path, stage1, stage_scores)
    # a loser's later seed recorded before (a one-stage run): better val and test, it must not count
    lam9 = next(s for s in every if is_stage2(s) and s.distiller["hparams"]["lam"] == 0.9)
    write_all(tmp_path, [lam9], stage_scores)
    # stage 1 complete, stage 2 not run: the selection is final (no '*') but its point lacks a seed ('+')
    pending_row = leaderboard(load_runs(tmp_path, ["hs"])).query("distiller == 'kd'").iloc[0]
    assert not pending_row["search_provisional"] and pending_row["search_pending"] and pending_row["n"] == 2
    assert _selected_text(pending_row) == "lam=0.7 +"
    decided, pending = stage2_specs(tmp_path, every)
    assert pending == [] and len(decided) == 1
    assert decided[0].distiller["hparams"]["lam"] == 0.7 and decided[0].seed == 2
    assert decided[0].search["label"] == "kd[lam=0.7]"
    # stage 2 recorded: the selection stays, the leaderboard row is the winner over all its seeds
    write_all(tmp_path, decided, stage_scores)
    assert stage2_specs(tmp_path, every)[0] == decided  # idempotent: the same decision from the records
    runs = load_runs(tmp_path, ["hs"])
    table = search_table(runs).set_index("search_label")
    assert table["selected"].tolist() == [False, True, False] and not table["provisional"].any()
    assert table.loc["kd[lam=0.7]", "val_mean"] == pytest.approx(80.5)  # search seeds only
    assert table.loc["kd[lam=0.9]", "val_mean"] == pytest.approx(78.5)
    assert table[["n", "n_search", "n_expected"]].loc["kd[lam=0.7]"].tolist() == [3, 2, 3]
    assert table[["n", "n_search", "n_expected"]].loc["kd[lam=0.5]"].tolist() == [2, 2, 2]
    assert table[["n", "n_search", "n_expected"]].loc["kd[lam=0.9]"].tolist() == [3, 2, 2]
    row = leaderboard(runs).query("distiller == 'kd'").iloc[0]
    tests = [65.0, 66.0, 61.0]
    assert row["search_selected"] == "kd[lam=0.7]" and row["n"] == 3
    assert row["test_mean"] == pytest.approx(sum(tests) / 3)
    assert row["test_std"] == pytest.approx(pd.Series(tests).std(ddof=1))
    assert not row["search_provisional"] and not row["search_pending"] and _selected_text(row) == "lam=0.7"
    write_report(tmp_path, "hs")
    md = (tmp_path / "hs" / "LEADERBOARD.md").read_text()
    assert "| 3/3 " in md and "| 2/2 " in md and "sel (provisional)" not in md


def test_a_grown_grid_retags_every_seed_of_the_old_points(tmp_path):
    """`gkd-bench run` after a grid grows: the new point wins stage 1, and the old winner's stage-2 records
    (no longer planned) are re-tagged with the new grid too, so no group of the old grid is left in the
    search table (they showed as a second, provisional group)."""
    from gkd_bench.cli import main

    old = two_stage_suite()
    every_old = expand(old, all_seeds=True)
    write_all(tmp_path, [s for s in every_old if not is_stage2(s)], stage_scores)
    decided, _ = stage2_specs(tmp_path, every_old)
    write_all(tmp_path, decided, stage_scores)  # lam 0.7 on seed 2, tagged with the old grid
    grown = two_stage_suite({"lam": [0.3, 0.5, 0.7, 0.9]})
    path = tmp_path / "hs.yaml"
    path.write_text(yaml.safe_dump(grown))
    new = [s for s in expand(grown, all_seeds=True) if s.distiller["label"] == "kd"
           and s.distiller["hparams"]["lam"] == 0.3]
    write_all(tmp_path, new, lambda s: (99.0, 50.0))  # the new point wins, all three seeds recorded
    r = CliRunner().invoke(main, ["run", "--suite", str(path), "--results-dir", str(tmp_path), "--no-timing"])
    assert r.exit_code == 0 and "ok" not in r.output.split("runs (")[-1], r.output  # nothing trained
    grid = pd.read_csv(tmp_path / "hs" / "search.csv")
    assert set(grid["search_size"]) == {4} and len(grid) == 4, grid
    assert grid.set_index("search_label").loc["kd[lam=0.7]", "n"] == 3
    assert read_record(record_path(tmp_path, "hs", decided[0].run_id))["search_size"] == 4


@pytest.mark.parametrize("status", ["missing", "error", "skipped"])
def test_stage2_waits_while_stage1_is_incomplete(tmp_path, status):
    every = expand(two_stage_suite(), all_seeds=True)
    stage1 = [s for s in every if not is_stage2(s)]
    hole = next(s for s in stage1 if s.distiller["label"] == "kd" and s.distiller["hparams"]["lam"] == 0.5
                and s.seed == 1)
    write_all(tmp_path, stage1, stage_scores, skip={hole.run_id})
    if status != "missing":
        write_record(record_path(tmp_path, hole.suite, hole.run_id), fake_record(hole, None, None, status=status))
    decided, pending = stage2_specs(tmp_path, every)
    assert decided == [] and {s.run_id for s in pending} == {s.run_id for s in every if is_stage2(s)}
    runs = load_runs(tmp_path, ["hs"])
    assert search_table(runs)["provisional"].all()
    assert leaderboard(runs).query("distiller == 'kd'")["search_provisional"].item()
    # the hole filled: stage 2 is decided
    write_all(tmp_path, [hole], stage_scores)
    assert [s.search["label"] for s in stage2_specs(tmp_path, every)[0]] == ["kd[lam=0.7]"]


def test_two_stage_perturbed_copies_run_the_clean_selection_only(tmp_path):
    suite = {**two_stage_suite(), "robustness": {"train_noise": [0.5], "train_seeds": "0-1"}}
    every = expand(suite, all_seeds=True)
    assert not any(s.perturbation and s.distiller["label"] == "kd" for s in expand(suite))
    write_all(tmp_path, [s for s in every if not is_stage2(s)], stage_scores)
    decided = stage2_specs(tmp_path, every)[0]
    pert = [s for s in decided if s.perturbation]
    assert pert and {s.search["label"] for s in decided} == {"kd[lam=0.7]"}
    assert {s.seed for s in pert} == {0, 1}


@pytest.mark.parametrize("seeds,match", [
    ("0-5", r"distiller 'kd': search 'seeds' '0-5' must be a subset of the suite's seeds \[0, 1, 2\]"),
    ("a-b", r"distiller 'kd': search 'seeds': cannot parse seeds"),
    ([], r"distiller 'kd': search 'seeds' is empty"),
    ([0, 0], r"distiller 'kd': search 'seeds' repeats a seed"),
    ([0.5], r"distiller 'kd': search 'seeds': not a seed list"),
    (True, r"distiller 'kd': search 'seeds': not a seed list"),
])
def test_malformed_search_seeds_are_suite_errors(seeds, match):
    with pytest.raises(SuiteError, match=match):
        expand(two_stage_suite(seeds=seeds))


def test_search_seeds_without_parameters_or_mismatched_between_student_and_distiller():
    with pytest.raises(SuiteError, match=r"distiller 'kd': search has 'seeds' but no parameter"):
        expand(with_search(BASE, "distillers", "kd", {"seeds": "0-1"}))
    suite = with_search(two_stage_suite(), "models", "mlp", {"dropout": [0.0, 0.5], "seeds": "0"})
    with pytest.raises(SuiteError, match=r"model 'mlp' and distiller 'kd' .* different search seeds"):
        expand(suite)
    suite = with_search(two_stage_suite(), "models", "mlp", {"dropout": [0.0, 0.5], "seeds": [1, 0]})
    kd = [s for s in expand(suite) if s.distiller["label"] == "kd"]
    assert len(kd) == 6 * 2 and {s.search["group"] for s in kd} == {"mlp+kd"}


# ----------------------------------------------------------------------------------------- end to end
TINY = """
name: tinysearch
seeds: 0-1
datasets:
  cora: {protocol: planetoid}
train: {epochs: 10, patience: 10}
models:
  gcn: {model: gcn, hidden: 16}
  mlp: {model: mlp, hidden: 16}
distillers:
  none: {}
  kd: {lam: 0.5, search: {T: [1.0, 4.0]}}
experiments:
  - {student: [gcn, mlp], distiller: none}
  - {teacher: gcn, student: mlp, distiller: kd}
"""


@requires_data("planetoid/ind.cora.x")
def test_cli_search_on_cora_writes_selected_row_and_grid_table(tmp_path):
    from gkd_bench.cli import main

    suite = tmp_path / "tinysearch.yaml"
    suite.write_text(TINY)
    results = tmp_path / "results"
    cli = CliRunner()
    r = cli.invoke(main, ["run", "--suite", str(suite), "--results-dir", str(results), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "kd[T=1]" in r.output and "kd[T=4]" in r.output and "8 runs" in r.output
    r = cli.invoke(main, ["run", "--suite", str(suite), "--results-dir", str(results), "--no-timing"])
    assert r.exit_code == 0, r.output
    runs = pd.read_csv(results / "tinysearch" / "runs.csv")
    assert (runs["status"] == "ok").all() and len(runs) == 8
    kd_runs = runs[runs["distiller"] == "kd"]
    assert set(kd_runs["search_label"]) == {"kd[T=1]", "kd[T=4]"} and set(kd_runs["search_group"]) == {"kd"}
    means = kd_runs.groupby("search_label")[["val", "test"]].mean()
    counts = kd_runs.groupby("search_label")["seed"].nunique()
    best = max(means.index, key=lambda lbl: (means.loc[lbl, "val"], counts[lbl], -sorted(means.index).index(lbl)))
    lb = pd.read_csv(results / "tinysearch" / "leaderboard.csv")
    kd = lb[lb["distiller"] == "kd"]
    assert len(kd) == 1 and kd["search_selected"].item() == best
    assert kd["test_mean"].item() == pytest.approx(means.loc[best, "test"])
    assert kd["search_candidates"].item() == 2 and not kd["search_provisional"].item()
    grid = pd.read_csv(results / "tinysearch" / "search.csv")
    assert sorted(grid["search_label"]) == ["kd[T=1]", "kd[T=4]"]
    assert grid.set_index("search_label")["val_mean"].to_dict() == pytest.approx(means["val"].to_dict())
    assert grid.loc[grid["selected"], "search_label"].tolist() == [best]
    md = (results / "tinysearch" / "LEADERBOARD.md").read_text()
    assert "## Hyperparameter search" in md and "kd[T=1]" in md and "kd[T=4]" in md
    # the html site renders the selected row and the grid
    r = cli.invoke(main, ["report", "--results-dir", str(results), "--format", "html"])
    assert r.exit_code == 0, r.output
    page = next((results / "site" / "tinysearch").glob("cora_*.html")).read_text()
    assert best in page and "Hyperparameter search" in page


TINY2 = TINY.replace("name: tinysearch", "name: tiny2").replace("seeds: 0-1", "seeds: 0-2").replace(
    "search: {T: [1.0, 4.0]}", "search: {T: [1.0, 4.0], seeds: 0-1}")


@requires_data("planetoid/ind.cora.x")
def test_cli_two_stage_search_on_cora(tmp_path):
    from gkd_bench.cli import main

    assert TINY2 != TINY and "seeds: 0-1}" in TINY2
    suite = tmp_path / "tiny2.yaml"
    suite.write_text(TINY2)
    results = tmp_path / "results"
    cli = CliRunner()
    args = ["run", "--suite", str(suite), "--results-dir", str(results)]
    r = cli.invoke(main, args + ["--dry-run"])
    assert r.exit_code == 0, r.output
    assert "10 runs" in r.output and "stage 2: 1 more runs" in r.output and "decided after stage 1" in r.output
    r = cli.invoke(main, args + ["--no-timing"])
    assert r.exit_code == 0, r.output
    runs = pd.read_csv(results / "tiny2" / "runs.csv")
    assert (runs["status"] == "ok").all()
    kd_runs = runs[runs["distiller"] == "kd"]
    tune = kd_runs[kd_runs["seed"] < 2]
    means = tune.groupby("search_label")["val"].mean()
    assert len(means) == 2 and tune.groupby("search_label")["seed"].nunique().tolist() == [2, 2]
    best = max(means.index, key=lambda lbl: (means[lbl], -sorted(means.index).index(lbl)))
    every = expand(load_suite(str(suite)), all_seeds=True)
    want = {s.run_id for s in every if not (s.distiller["label"] == "kd" and s.seed == 2)} | {
        s.run_id for s in every if s.distiller["label"] == "kd" and s.seed == 2 and s.search["label"] == best}
    assert set(runs["run_id"]) == want and len(want) == 11
    assert set(kd_runs.loc[kd_runs["seed"] == 2, "search_label"]) == {best}
    lb = pd.read_csv(results / "tiny2" / "leaderboard.csv")
    kd = lb[lb["distiller"] == "kd"]
    assert len(kd) == 1 and kd["search_selected"].item() == best and kd["n"].item() == 3
    assert kd["test_mean"].item() == pytest.approx(kd_runs.loc[kd_runs["search_label"] == best, "test"].mean())
    assert not kd["search_provisional"].item()
    grid = pd.read_csv(results / "tiny2" / "search.csv").set_index("search_label")
    assert grid.loc[best, "n"] == 3 and grid.loc[best, "n_expected"] == 3 and grid.loc[best, "n_search"] == 2
    # everything done: the dry run lists stage 2, a rerun trains nothing
    r = cli.invoke(main, args + ["--dry-run"])
    assert r.exit_code == 0 and "11 runs (1 of them stage 2)" in r.output and "decided after" not in r.output
    r = cli.invoke(main, args + ["--no-timing", "--no-report"])
    assert r.exit_code == 0 and "11 runs (11 done)" in r.output, r.output
    # interrupted in stage 2: only the missing run trains
    stage2 = runs.loc[(runs["distiller"] == "kd") & (runs["seed"] == 2), "run_id"].item()
    record_path(results, "tiny2", stage2).unlink()
    r = cli.invoke(main, args + ["--no-timing", "--no-report"])
    assert r.exit_code == 0 and "11 runs (10 done, 1 ok)" in r.output, r.output
    assert read_record(record_path(results, "tiny2", stage2))["search_label"] == best
