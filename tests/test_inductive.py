"""The inductive (GLNN "production") setting: held-out test nodes lose every edge, never enter
training (teacher or student), and are scored with the full graph.

Each test would fail if one of those properties broke: a view that kept the
held-out nodes, an edge left between observed and held-out nodes, a teacher
or student trained on the full graph, or ``test_ind`` scored on the observed
graph.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import gkd_bench  # noqa: F401
from gkd_bench.data import GraphData, ModelOutput
from gkd_bench.datasets.settings import apply_setting, make_inductive


def synthetic(n=60, c=3, f=6, seed=0) -> GraphData:
    """A random graph (both directions) with a 20/20/20 split."""
    import dgl

    rng = np.random.RandomState(seed)
    src = rng.randint(0, n, 4 * n)
    dst = rng.randint(0, n, 4 * n)
    g = dgl.to_bidirected(dgl.remove_self_loop(dgl.graph((torch.from_numpy(src), torch.from_numpy(dst)),
                                                         num_nodes=n)))
    y = torch.from_numpy(rng.randint(0, c, n))
    x = torch.randn(n, f, generator=torch.Generator().manual_seed(seed))
    perm = torch.from_numpy(rng.permutation(n))
    splits = {"train": perm[:20].sort().values, "val": perm[20:40].sort().values, "test": perm[40:].sort().values}
    return GraphData(name="syn", graph=g, x=x, y=y, splits=splits, num_classes=c, protocol="syn")


def test_held_out_set_is_a_seeded_fraction_of_test():
    d = synthetic()
    a, b, other = make_inductive(d, 3), make_inductive(d, 3), make_inductive(d, 4)
    test = set(d.splits["test"].tolist())
    ind, tran = set(a.splits["test_ind"].tolist()), set(a.splits["test_tran"].tolist())
    assert len(ind) == round(0.2 * len(test)) and ind | tran == test and not ind & tran
    assert torch.equal(a.splits["test_ind"], b.splits["test_ind"])          # same for every method
    assert not torch.equal(a.splits["test_ind"], other.splits["test_ind"])
    assert set(a.observed.tolist()) == set(range(d.num_nodes)) - ind
    with pytest.raises(ValueError, match="inductive fraction"):
        make_inductive(d, 0, fraction=1.0)


def check_view(data: GraphData):
    """The observed view holds no held-out node and exactly the edges between observed nodes."""
    view = data.training_view()
    held = data.splits["test_ind"]
    parent = view.extra["parent_ids"]
    assert view.num_nodes == data.num_nodes - len(held) == view.graph.num_nodes()
    assert not torch.isin(parent, held).any()
    # independent count: edges of the full graph with both endpoints observed
    src, dst = data.graph.edges()
    keep = torch.ones(data.num_nodes, dtype=torch.bool)
    keep[held] = False
    want = {(int(a), int(b)) for a, b in zip(src[keep[src] & keep[dst]], dst[keep[src] & keep[dst]])}
    vs, vd = view.graph.edges()
    got = {(int(parent[a]), int(parent[b])) for a, b in zip(vs, vd)}
    assert got == want
    assert not any(a in set(held.tolist()) or b in set(held.tolist()) for a, b in got)
    assert torch.equal(view.x, data.x[parent]) and torch.equal(view.y, data.y[parent])
    for key in ("train", "val", "test_tran"):
        assert torch.equal(parent[view.splits[key]], data.splits[key])
    assert "test_ind" not in view.splits and "test" not in view.splits
    return view


def test_training_view_on_synthetic_graph():
    check_view(make_inductive(synthetic(), 0))


def test_training_view_on_cpf_cora(tmp_path):
    root = os.environ.get("GKD_BENCH_DATA")
    if not root or not os.path.exists(os.path.join(root, "cpf", "cora.npz")):
        pytest.skip("GKD_BENCH_DATA/cpf/cora.npz absent")
    from gkd_bench.registry import DATASETS

    d = DATASETS.get("cora")(root=root, cache=str(tmp_path), protocol="cpf", seed=0)
    ind = apply_setting(d, "inductive", 0, 0.2)
    assert len(ind.splits["test_ind"]) == round(0.2 * len(d.splits["test"]))
    view = check_view(ind)
    # held-out nodes had edges in the full graph, so something was really removed
    assert d.graph.in_degrees(ind.splits["test_ind"]).sum() > len(ind.splits["test_ind"])
    assert view.graph.num_edges() < d.graph.num_edges()


class LabelSpy(torch.nn.Module):
    """Predicts the label stored in x[:, 0] when given the full graph, the next class otherwise."""

    def __init__(self, full_nodes: int, c: int):
        super().__init__()
        self.full_nodes, self.c = full_nodes, c
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, graph, x):
        shift = 0 if graph.num_nodes() == self.full_nodes else 1
        pred = (x[:, 0].long() + shift) % self.c
        return ModelOutput(torch.nn.functional.one_hot(pred, self.c).float() + 0 * self.w)


def test_evaluate_scores_held_out_nodes_on_the_full_graph():
    from gkd_bench.runner import evaluate

    d = synthetic()
    d = d.replace(x=torch.cat([d.y.float()[:, None], d.x[:, 1:]], 1))
    data = make_inductive(d, 1)
    view = data.training_view()
    res = evaluate(LabelSpy(d.num_nodes, d.num_classes), data, view)
    n_t, n_i = len(data.splits["test_tran"]), len(data.splits["test_ind"])
    assert res["test_ind"] == 100.0          # full graph
    assert res["test_tran"] == 0.0 and res["val"] == 0.0   # observed graph
    assert res["test_prod"] == pytest.approx(100.0 * n_i / (n_t + n_i)) and res["test"] == res["test_prod"]


def test_no_leakage_into_teacher_or_student_training(tmp_path, monkeypatch):
    """Held-out nodes carry NaN features: any use in training (a forward pass over them, or message
    passing from them) would make losses and weights NaN. Every fit must see only observed nodes."""
    import gkd_bench.runner as runner_mod
    from gkd_bench.runner import Runner
    from gkd_bench.spec import expand

    base = synthetic(n=80)
    data = make_inductive(base, 0)
    held = data.splits["test_ind"]
    x = base.x.clone()
    x[held] = float("nan")
    data = data.replace(x=x)
    assert torch.isnan(data.x).any()

    seen = []
    real_fit = runner_mod.fit

    def spy_fit(model, distiller, view, teacher_out, cfg, *a, **k):
        seen.append({"nodes": view.graph.num_nodes(), "x_finite": bool(torch.isfinite(view.x).all()),
                     "teacher_rows": None if teacher_out is None else teacher_out.logits.shape[0]})
        res = real_fit(model, distiller, view, teacher_out, cfg, *a, **k)
        seen[-1]["params_finite"] = all(bool(torch.isfinite(p).all()) for p in model.parameters())
        return res

    monkeypatch.setattr(runner_mod, "fit", spy_fit)
    monkeypatch.setattr(Runner, "load_data", lambda self, spec: data)
    suite = {"name": "ind", "seeds": 0, "settings": ["inductive"], "datasets": {"cora": {}},
             "train": {"epochs": 3, "patience": 3},
             "models": {"gcn": {"model": "gcn", "hidden": 8}, "mlp": {"model": "mlp", "hidden": 8}},
             "distillers": {"kd": {"distiller": "kd", "lam": 0.5}},
             "experiments": [{"teacher": "gcn", "student": "mlp", "distiller": "kd"}]}
    (spec,) = expand(suite)
    rec = Runner(tmp_path / "res", cache_dir=str(tmp_path / "cache"), timing=False,
                 fail_fast=True).run_one(spec)
    n_obs = data.num_nodes - len(held)
    assert len(seen) == 2  # teacher (gcn, distiller none) then student (mlp, kd)
    for call in seen:
        assert call["nodes"] == n_obs and call["x_finite"] and call["params_finite"]
    assert seen[1]["teacher_rows"] == n_obs
    for k in ("val", "test_tran", "teacher_val", "teacher_test_tran"):
        assert np.isfinite(rec[k]), k


def test_node_level_inductive_refused_for_multi_graph_data():
    d = synthetic()
    multi = d.replace(graphs={"train": [d], "val": [d], "test": [d]})
    with pytest.raises(ValueError, match="separate train/val/test graphs"):
        apply_setting(multi, "inductive", 0)
    assert apply_setting(multi, "transductive", 0) is multi
