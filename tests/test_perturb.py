"""Perturbations (gkd_bench.perturb), robustness config/expansion and test-time columns (gkd_bench.robustness)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import requires_data, synthetic_graph
from gkd_bench.perturb import (add_edges, apply_perturbation, drop_edges, feature_noise, perturbation_seed,
                               undirected_edges)
from gkd_bench.robustness import resolve_robustness, robustness_columns
from gkd_bench.spec import RunSpec, SuiteError, expand


def pairs(graph):
    """Independent reference: set of unordered non-loop pairs, via Python sets."""
    s, d = graph.edges()
    return {(min(a, b), max(a, b)) for a, b in zip(s.tolist(), d.tolist()) if a != b}


def directed(graph):
    s, d = graph.edges()
    return list(zip(s.tolist(), d.tolist()))


def with_loops(data):
    import dgl

    return data.replace(graph=dgl.add_edges(data.graph, torch.tensor([0, 5]), torch.tensor([0, 5])))


# ------------------------------------------------------------------ features
def test_feature_noise_zero_is_identity():
    x = torch.rand(30, 7)
    assert torch.equal(feature_noise(x, 0.0, 123), x)
    data = synthetic_graph()
    out = apply_perturbation(data, {"kind": "feature_noise", "level": 0.0}, seed=4)
    assert torch.equal(out.x, data.x)
    assert out.x is not data.x


def test_feature_noise_formula():
    a = 0.3
    x1, x2 = torch.rand(50, 9), torch.rand(50, 9)
    y1, y2 = feature_noise(x1, a, 7), feature_noise(x2, a, 7)
    # same seed -> same noise, so the difference is (1 - a)(x1 - x2)
    torch.testing.assert_close(y1 - y2, (1 - a) * (x1 - x2))
    # x = 0 leaves a * N(0, 1)
    z = feature_noise(torch.zeros(400, 500), 0.5, 1) / 0.5
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1.0) < 0.01
    # a = 1 is pure noise, independent of x
    assert torch.equal(feature_noise(x1, 1.0, 3), feature_noise(x2, 1.0, 3))
    assert not torch.equal(feature_noise(x1, a, 7), feature_noise(x1, a, 8))
    x0 = x1.clone()
    y = feature_noise(x1, a, 7)
    assert torch.equal(x1, x0)  # input untouched
    noise = torch.randn(x1.shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(y, (1 - a) * x1 + a * noise)  # the formula, bit for bit
    with pytest.raises(ValueError, match="feature_noise level must be in"):
        feature_noise(x1, 1.5, 0)


# ------------------------------------------------------------------ edges
@pytest.mark.parametrize("p", [0.05, 0.1, 0.2, 0.5])
def test_edge_drop_removes_round_pE_undirected_edges(p):
    data = with_loops(synthetic_graph(n=80))
    g = data.graph
    before = pairs(g)
    E = len(before)
    assert len(undirected_edges(g)) == E
    g2 = drop_edges(g, p, seed=11)
    after = pairs(g2)
    assert after <= before
    assert len(before - after) == int(round(p * E))
    # symmetric: both directions of every dropped pair are gone, the others kept as they were
    kept = [(u, v) for u, v in directed(g) if (min(u, v), max(u, v)) in after or u == v]
    assert sorted(directed(g2)) == sorted(kept)
    assert g2.num_nodes() == g.num_nodes()
    assert (0, 0) in directed(g2) and (5, 5) in directed(g2)  # self-loops never dropped


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5])
def test_edge_add_adds_round_pE_new_undirected_edges(p):
    data = synthetic_graph(n=80)
    g = data.graph
    before = pairs(g)
    E = len(before)
    g2 = add_edges(g, p, seed=5)
    after = pairs(g2)
    new = after - before
    assert before <= after
    assert len(new) == int(round(p * E))
    assert all(u != v for u, v in new)
    d2 = directed(g2)
    assert len(d2) == len(set(d2)) == g.num_edges() + 2 * len(new)  # no duplicates, both directions
    assert all((v, u) in set(d2) for u, v in new)


def test_edge_add_refuses_impossible_requests():
    import dgl

    src = torch.tensor([0, 0, 0, 1, 1, 2])
    dst = torch.tensor([1, 2, 3, 2, 3, 3])
    complete = dgl.graph((torch.cat([src, dst]), torch.cat([dst, src])), num_nodes=4)
    with pytest.raises(ValueError, match="cannot add 3 edges"):
        add_edges(complete, 0.5, 0)


def test_unknown_kind_and_bad_level():
    data = synthetic_graph()
    with pytest.raises(ValueError, match="unknown perturbation kind 'shuffle'"):
        apply_perturbation(data, {"kind": "shuffle", "level": 0.1}, 0)
    with pytest.raises(ValueError, match="edge_drop level must be in"):
        apply_perturbation(data, {"kind": "edge_drop", "level": -0.1}, 0)


def test_perturbation_seed_depends_on_every_part():
    base = perturbation_seed("cora", 0, "edge_drop", 0.1, 0)
    assert base == perturbation_seed("cora", 0, "edge_drop", 0.10, 0)
    others = {perturbation_seed("citeseer", 0, "edge_drop", 0.1, 0), perturbation_seed("cora", 1, "edge_drop", 0.1, 0),
              perturbation_seed("cora", 0, "edge_add", 0.1, 0), perturbation_seed("cora", 0, "edge_drop", 0.2, 0),
              perturbation_seed("cora", 0, "edge_drop", 0.1, 1)}
    assert base not in others and len(others) == 5


def test_perturbation_ignores_the_global_rng():
    data = synthetic_graph()
    p = {"kind": "edge_drop", "level": 0.2}
    torch.manual_seed(0)
    a = apply_perturbation(data, p, seed=3)
    torch.manual_seed(999)
    torch.rand(10)
    b = apply_perturbation(data, p, seed=3)
    assert directed(a.graph) == directed(b.graph)
    c = apply_perturbation(data, p, seed=4)
    assert directed(a.graph) != directed(c.graph)


# ------------------------------------------------------------------ same data for every method
class _Datasets:
    """Stand-in for the DATASETS registry inside the runner: every name loads the synthetic graph."""

    def get(self, name):
        return lambda **kw: synthetic_graph(n=70, seed=1)


def _spec(student="mlp", distiller="none", seed=0, perturbation=None):
    return RunSpec(suite="t", dataset="cora", protocol="planetoid", setting="transductive",
                   student={"label": student, "model": student, "hparams": {}, "train": {}},
                   distiller={"label": distiller, "name": distiller, "hparams": {}}, seed=seed,
                   perturbation=perturbation)


@pytest.mark.parametrize("pert", [{"kind": "feature_noise", "level": 0.5}, {"kind": "edge_drop", "level": 0.2},
                                  {"kind": "edge_add", "level": 0.1}])
def test_every_method_trains_on_the_same_perturbed_data(tmp_path, monkeypatch, pert):
    import gkd_bench.runner as runner_mod

    monkeypatch.setattr(runner_mod, "DATASETS", _Datasets())
    a = runner_mod.Runner(tmp_path / "a").load_data(_spec("mlp", "none", 2, pert))
    b = runner_mod.Runner(tmp_path / "b").load_data(_spec("gcn", "kd", 2, pert))  # another "run", new runner
    assert torch.equal(a.x, b.x) and directed(a.graph) == directed(b.graph)
    clean = runner_mod.Runner(tmp_path / "c").load_data(_spec("mlp", "none", 2, None))
    other_seed = runner_mod.Runner(tmp_path / "d").load_data(_spec("mlp", "none", 3, pert))
    assert not (torch.equal(a.x, clean.x) and directed(a.graph) == directed(clean.graph))
    assert not (torch.equal(a.x, other_seed.x) and directed(a.graph) == directed(other_seed.graph))


def test_test_time_robustness_sees_the_same_data_for_every_model():
    data = synthetic_graph()
    seen = {}

    def fake_evaluate(model, pdata, view):
        seen.setdefault(model, []).append((pdata.x.clone(), directed(pdata.graph)))
        return {"test": 50.0}

    cfg = resolve_robustness({"feature_noise": [0.3], "edge_drop": [0.1], "edge_add": [0.2]})
    cols_a = robustness_columns("model-a", data, 7, 100.0, fake_evaluate, cfg)
    robustness_columns("model-b", data, 7, 100.0, fake_evaluate, cfg)
    for (xa, ga), (xb, gb) in zip(seen["model-a"], seen["model-b"]):
        assert torch.equal(xa, xb) and ga == gb
    assert len(seen["model-a"]) == 3
    assert cols_a["robust_feat_0.3"] == 50.0 and cols_a["robust_summary_drop"] == pytest.approx(0.5)
    assert cols_a["structure_invariant"] is False


def test_graph_free_student_is_flagged_and_invariant():
    from gkd_bench.fit import predict
    from gkd_bench.metrics import score
    from gkd_bench.registry import MODELS

    data = synthetic_graph()
    model = MODELS.get("mlp")(in_dim=data.num_features, num_classes=data.num_classes).eval()

    def evaluate(m, d, view):
        out = predict(m, d.graph, d.x).logits
        return {"test": score("accuracy", out[d.splits["test"]], d.y[d.splits["test"]])}

    clean = evaluate(model, data, data)["test"]
    cols = robustness_columns(model, data, 0, clean, evaluate, resolve_robustness(None))
    assert cols["structure_invariant"] is True
    assert cols["robust_summary_drop"] == pytest.approx(1.0) and cols["robust_summary_add"] == pytest.approx(1.0)
    assert sorted(k for k in cols if k.startswith("robust_feat_")) == [
        "robust_feat_0.1", "robust_feat_0.3", "robust_feat_0.5", "robust_feat_0.7", "robust_feat_0.9"]


# ------------------------------------------------------------------ suite configuration
SUITE = {"name": "t", "seeds": "0-1", "datasets": {"cora": {"protocol": "planetoid"}},
         "models": {"gcn": {"model": "gcn"}, "mlp": {"model": "mlp"}}, "distillers": {"none": {}, "kd": {}},
         "experiments": [{"student": ["mlp"], "distiller": "none"},
                         {"teacher": "gcn", "student": "mlp", "distiller": "kd"}]}


def test_train_time_entries_expand_into_perturbed_runs():
    suite = {**SUITE, "robustness": {"train_noise": [0.3, 0.5], "poison_drop": [0.1], "train_seeds": [0]}}
    specs = expand(suite)
    clean = [s for s in specs if s.perturbation is None]
    pert = [s for s in specs if s.perturbation is not None]
    assert len(clean) == 4 and len(pert) == 2 * 3  # 2 configs x seed 0 x 3 levels
    assert {s.seed for s in pert} == {0}
    assert sorted((s.perturbation["kind"], s.perturbation["level"]) for s in pert if s.distiller["name"] == "kd") == [
        ("edge_drop", 0.1), ("feature_noise", 0.3), ("feature_noise", 0.5)]
    kd = next(s for s in pert if s.distiller["name"] == "kd")
    assert kd.teacher_run().perturbation == kd.perturbation  # the teacher cache key includes it
    clean_kd = next(s for s in clean if s.distiller["name"] == "kd" and s.seed == kd.seed)
    assert kd.teacher_run().run_id != clean_kd.teacher_run().run_id
    assert kd.config_id != clean_kd.config_id


def test_test_time_levels_do_not_change_run_ids():
    a = expand(SUITE)
    b = expand({**SUITE, "robustness": {"feature_noise": [0.5], "edge_add": []}, "latency": {"batches": [10]}})
    assert [s.run_id for s in a] == [s.run_id for s in b]
    assert b[0].evaluation["robustness"]["feature_noise"] == [0.5]
    assert b[0].evaluation["robustness"]["edge_add"] == []
    assert b[0].evaluation["latency"]["batches"] == [10]
    assert a[0].evaluation["robustness"]["edge_drop"] == [0.05, 0.1, 0.2, 0.5]  # defaults


def test_set_overrides_robustness_levels():
    specs = expand(SUITE, sets=["robustness.train_noise=[0.9]"])
    assert {(s.perturbation or {}).get("level") for s in specs} == {None, 0.9}


@pytest.mark.parametrize("block, message", [
    ({"noise": [0.1]}, r"robustness: unknown key\(s\) \['noise'\]"),
    ({"feature_noise": [1.5]}, r"robustness.feature_noise: level 1.5 must be in \(0, 1\]"),
    ({"edge_drop": ["a lot"]}, "robustness.edge_drop: level 'a lot' is not a number"),
    ([0.1], "robustness must be a mapping"),
])
def test_bad_robustness_blocks(block, message):
    with pytest.raises(SuiteError, match=message):
        expand({**SUITE, "robustness": block})


@pytest.mark.parametrize("block, message", [({"batches": [0]}, "positive integer"),
                                            ({"sizes": [1]}, r"latency: unknown key\(s\) \['sizes'\]"),
                                            ({"min_run_time": 0}, "min_run_time must be > 0")])
def test_bad_latency_blocks(block, message):
    with pytest.raises(SuiteError, match=message):
        expand({**SUITE, "latency": block})


def test_robustness_false_switches_everything_off():
    specs = expand({**SUITE, "robustness": False})
    rob = specs[0].evaluation["robustness"]
    assert all(rob[k] == [] for k in ("feature_noise", "edge_drop", "edge_add", "train_noise"))
    assert all(s.perturbation is None for s in specs)


# ------------------------------------------------------------------ real data
@requires_data("planetoid/ind.cora.graph")
def test_cora_edge_counts():
    from gkd_bench.registry import DATASETS

    data = DATASETS.get("cora")(protocol="planetoid", seed=0)
    E = len(undirected_edges(data.graph))
    assert E == 5278
    dropped = apply_perturbation(data, {"kind": "edge_drop", "level": 0.1}, 0)
    assert len(pairs(data.graph) - pairs(dropped.graph)) == 528
    added = apply_perturbation(data, {"kind": "edge_add", "level": 0.2}, 0)
    assert len(pairs(added.graph) - pairs(data.graph)) == 1056
    again = apply_perturbation(dataclasses.replace(data), {"kind": "edge_add", "level": 0.2}, 0)
    assert directed(again.graph) == directed(added.graph)


# ------------------------------------------------------------------ runner: order and perturbed copies
def test_execution_order_runs_seed_by_seed_within_each_dataset_and_setting():
    from gkd_bench.runner import execution_order
    from gkd_bench.spec import expand

    suite = {"name": "order", "seeds": "0-2", "settings": ["transductive", "inductive"],
             "datasets": {"cora": {"protocol": "planetoid"}, "citeseer": {"protocol": "planetoid"}},
             "models": {"gcn": {"model": "gcn"}, "mlp": {"model": "mlp"}},
             "distillers": {"none": {}, "kd": {}},
             "experiments": [{"student": "gcn", "distiller": "none"},
                             {"teacher": "gcn", "student": "mlp", "distiller": "kd"}]}
    specs = expand(suite)
    ordered = execution_order(specs)
    assert sorted(s.run_id for s in ordered) == sorted(s.run_id for s in specs)
    groups = [(s.dataset, s.setting) for s in ordered]
    first = list(dict.fromkeys((s.dataset, s.setting) for s in specs))
    assert list(dict.fromkeys(groups)) == first  # groups contiguous, in the suite's order
    for ds, setting in first:
        runs = [s for s in ordered if (s.dataset, s.setting) == (ds, setting)]
        assert [s.seed for s in runs] == [0, 0, 1, 1, 2, 2]
        assert [s.distiller["label"] for s in runs] == ["none", "kd"] * 3  # the teacher's run first



def test_clean_key_pairs_a_perturbed_copy_of_a_searched_point_with_its_clean_run():
    import json

    from gkd_bench.robustness import clean_key

    clean = {"dataset": "cora", "seed": 0, "suite": "s", "student": {"label": "mlp"},
             "distiller": {"name": "kd", "hparams": {"T": 4.0}}, "perturbation": None,
             "search": {"group": "mlp+kd", "index": 1, "seeds": [0, 1, 2, 3], "tune_seeds": [0, 1]}}
    perturbed = {**clean, "seed": 3, "perturbation": {"kind": "train_noise", "level": 0.5},
                 "search": {**clean["search"], "seeds": [0, 1]}, "evaluation": {"train_seeds": [0, 1]}}
    assert clean_key(json.dumps(clean)) == clean_key(json.dumps(perturbed))
    other_point = {**clean, "distiller": {"name": "kd", "hparams": {"T": 1.0}}}
    assert clean_key(json.dumps(other_point)) != clean_key(json.dumps(clean))
