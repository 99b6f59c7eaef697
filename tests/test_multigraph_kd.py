"""Offline distillation from a frozen teacher on multi-graph datasets (PPI: 20/2/2 graphs, multi-label).

On DGL's PPI file format written by :func:`test_dataset_fixtures.write_ppi`, with graphs of
unequal sizes (so a row offset that is off by one graph shows): the teacher rows a batch of
graphs gets, that no gradient reaches the teacher, the per-graph loss terms against an
independent NumPy computation, and every teacher-output distiller, the default suite's
``ppi`` KD rows and the G-CRD suite's PPI configuration through the CLI.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

import gkd_bench  # noqa: F401 - fills the registries
from gkd_bench.analysis import analysis_columns, linear_cka
from gkd_bench.cli import main
from gkd_bench.data import ModelOutput
from gkd_bench.fit import GRAPHS_PER_BATCH, TrainConfig, fit, graph_offsets, make_batches, predict, predict_graphs
from gkd_bench.methods._distiller import Batch
from gkd_bench.records import read_record, record_path
from gkd_bench.registry import DATASETS, DISTILLERS, MODELS
from gkd_bench.runner import Runner
from gkd_bench.spec import expand
from test_dataset_fixtures import write_ppi

SIZES = [4 + (3 * i) % 7 for i in range(24)]          # 4..10 nodes, graph ids 1..24 in order
N_TRAIN = sum(SIZES[:20])
TEACHER_OUTPUT = ["kd", "fitnet", "at", "lsp", "gsp", "gcrd", "kd+fitnet", "kd+at", "kd+lsp", "kd+gsp", "kd+gcrd"]
NO_MULTIGRAPH = ["sa_mlp_smkd", "sa_mlp_ind"]          # sa_mlp students: one row per node id of one graph


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("GKD_BENCH_OFFLINE", "1")
    monkeypatch.setenv("OUTDATED_IGNORE", "1")


@pytest.fixture
def ppi_root(tmp_path):
    root = tmp_path / "root"
    write_ppi(root, n_per_graph=SIZES)
    return root


@pytest.fixture
def ppi(ppi_root, tmp_path):
    return DATASETS.get("ppi")(root=str(ppi_root), cache=str(tmp_path / "cache"))


def _teacher(data, dropout=0.5):
    """A 3-layer GAT with dropout (train and eval mode differ) and two hidden layers."""
    torch.manual_seed(0)
    return MODELS.get("gat")(in_dim=data.num_features, num_classes=data.num_classes, hidden=4, heads=2,
                             num_layers=3, dropout=dropout, attn_dropout=dropout, residual=True)


def _small_kwargs(name):
    kw = {}
    if "fitnet" in name or "gsp" in name or "gcrd" in name:
        kw["proj_dim"] = 8
    if "gsp" in name or "gcrd" in name:
        kw["max_samples"] = 5   # below most graph sizes: sampling within each graph is exercised
    if name == "kd":
        kw.update(lam=0.5, T=2.0)
    return kw


def _graph_of(block_x, parts):
    """Index of the graph in ``parts`` whose features are exactly ``block_x``."""
    hits = [j for j, p in enumerate(parts) if p.x.shape == block_x.shape and torch.equal(p.x, block_x)]
    assert len(hits) == 1
    return hits[0]


# ----------------------------------------------------------------------- teacher rows per batch
def test_every_teacher_output_distiller_is_listed():
    """A new offline distiller must be added to the multi-graph tests (or refused by name)."""
    offline = {n for n in DISTILLERS.names() if getattr(DISTILLERS.get(n), "needs_teacher", True)
               and not getattr(DISTILLERS.get(n), "online", False)}
    assert offline == set(TEACHER_OUTPUT) | set(NO_MULTIGRAPH)
    assert all(DISTILLERS.get(n).multigraph for n in TEACHER_OUTPUT)
    assert not any(DISTILLERS.get(n).multigraph for n in NO_MULTIGRAPH)


def test_batch_teacher_rows_are_the_eval_forward_on_its_own_graphs(ppi):
    train = ppi.graphs["train"]
    teacher = _teacher(ppi)
    teacher.train()  # predict must switch to eval mode (dropout 0.5) and back
    t_out = predict_graphs(teacher, train)
    assert teacher.training
    assert t_out.logits.shape == (N_TRAIN, 121) and len(t_out.hidden) == 2
    assert all(h.shape == (N_TRAIN, 8) for h in t_out.hidden) and not t_out.logits.requires_grad
    assert graph_offsets(train).tolist() == [0] + np.cumsum(SIZES[:20]).tolist()
    orders = set()
    for seed in range(3):
        torch.manual_seed(seed)
        batches = make_batches(ppi, DISTILLERS.get("kd")(), t_out)
        assert len(batches) == 20 // GRAPHS_PER_BATCH
        order = []
        for b in batches:
            n = b.graph.num_nodes()
            assert b.graph_sizes.sum() == n == b.x.shape[0] == b.teacher.logits.shape[0] and b.nodes is None
            want = predict(teacher, b.graph, b.x)  # the teacher's eval forward on exactly this batch's graphs
            assert torch.allclose(b.teacher.logits, want.logits, atol=1e-5)
            for h, w in zip(b.teacher.hidden, want.hidden, strict=True):
                assert torch.allclose(h, w, atol=1e-5)
            start = 0
            for size in b.graph_sizes.tolist():
                j = _graph_of(b.x[start:start + size], train)
                assert size == train[j].num_nodes and torch.equal(b.y[start:start + size], train[j].y)
                order.append(j)
                start += size
        assert sorted(order) == list(range(20))   # each training graph once per epoch
        orders.add(tuple(order))
    assert len(orders) == 3                         # shuffled per epoch
    # in train mode the rows would differ: the comparison above can fail
    teacher.train()
    with torch.no_grad():
        assert not torch.allclose(teacher(batches[0].graph, batches[0].x).logits, batches[0].teacher.logits)


@pytest.mark.parametrize("per_batch, sizes", [(1, [1] * 20), (3, [3] * 6 + [2]), (20, [20])])
def test_graphs_per_batch_setting(ppi, per_batch, sizes):
    """train.graphs_per_batch: each training graph once per epoch, ``per_batch`` per step (the last step
    takes the rest); the teacher rows follow the batch; a TrainConfig keeps it out of to_dict (and so
    out of config ids) at the default only; < 1 is an error."""
    t_out = predict_graphs(_teacher(ppi), ppi.graphs["train"])
    torch.manual_seed(0)
    batches = make_batches(ppi, DISTILLERS.get("kd")(), t_out, graphs_per_batch=per_batch)
    assert [len(b.graph_sizes) for b in batches] == sizes
    assert sum(b.teacher.logits.shape[0] for b in batches) == N_TRAIN
    assert "graphs_per_batch" not in TrainConfig().to_dict() and TrainConfig().graphs_per_batch == GRAPHS_PER_BATCH
    cfg = TrainConfig.from_dict({"graphs_per_batch": per_batch})
    assert cfg.graphs_per_batch == per_batch
    assert ("graphs_per_batch" in cfg.to_dict()) == (per_batch != GRAPHS_PER_BATCH)
    with pytest.raises(ValueError, match="train.graphs_per_batch must be positive, got 0"):
        TrainConfig.from_dict({"graphs_per_batch": 0})
    with pytest.raises(ValueError, match="graphs_per_batch must be positive, got 0"):
        make_batches(ppi, DISTILLERS.get("kd")(), t_out, graphs_per_batch=0)


def test_fit_trains_with_the_configured_graphs_per_batch(ppi, monkeypatch):
    """fit passes train.graphs_per_batch to make_batches: one optimiser step per graph at 1."""
    import gkd_bench.fit as fit_mod

    seen = []
    real = fit_mod.make_batches
    monkeypatch.setattr(fit_mod, "make_batches", lambda *a, **k: seen.append(a[3] if len(a) > 3 else k.get(
        "graphs_per_batch")) or real(*a, **k))
    torch.manual_seed(0)
    student = MODELS.get("gat")(ppi.num_features, 121, hidden=4, heads=2, num_layers=2, dropout=0.0,
                                attn_dropout=0.0)
    fit(student, DISTILLERS.get("none")(), ppi, None, TrainConfig(epochs=2, patience=5, graphs_per_batch=1))
    assert seen == [1, 1]


def test_make_batches_refuses_teacher_outputs_of_other_nodes(ppi):
    t_out = predict_graphs(_teacher(ppi), ppi.graphs["train"][:-1])
    with pytest.raises(ValueError, match=r"dataset 'ppi': teacher outputs have .* rows, but the 20 training graphs"):
        make_batches(ppi, DISTILLERS.get("kd")(), t_out)


SUITE = {
    "name": "mg-test", "seeds": 0,
    "datasets": {"ppi": {"protocol": "ppi"}},
    "train": {"epochs": 2, "lr": 0.01, "weight_decay": 0.0, "patience": 10},
    "models": {"gat": {"model": "gat", "hidden": 4, "heads": 2, "num_layers": 3, "dropout": 0.3,
                       "attn_dropout": 0.3, "residual": True},
               "gcn": {"model": "gcn", "hidden": 6, "dropout": 0.0}},
    "distillers": {name: _small_kwargs(name) for name in TEACHER_OUTPUT},
    "experiments": [{"teacher": "gat", "student": "gcn", "distiller": TEACHER_OUTPUT}],
    "robustness": {"feature_noise": [0.5], "edge_drop": [0.5], "edge_add": []},
    "latency": {"batches": [2], "min_run_time": 0.01, "memory": False},
}


def test_runner_teacher_outputs_are_frozen_eval_outputs_per_training_graph(ppi_root, tmp_path):
    spec = expand(SUITE, distillers=["kd"])[0]
    runner = Runner(tmp_path / "res", data_root=str(ppi_root), cache_dir=tmp_path / "cache", timing=False,
                    fail_fast=True)
    data = runner.load_data(spec)
    view = data.training_view()
    teacher, t_out, tmetrics = runner.get_teacher(spec, data, view)
    assert all(not p.requires_grad for p in teacher.parameters())
    assert not t_out.logits.requires_grad and not any(h.requires_grad for h in t_out.hidden)
    assert t_out.logits.shape[0] == N_TRAIN and {"val", "test"} <= set(tmetrics)
    offsets = graph_offsets(view.graphs["train"]).tolist()
    teacher.eval()
    with torch.no_grad():
        for j, part in enumerate(view.graphs["train"]):  # each graph alone, eval mode
            out = teacher(part.graph, part.x)
            assert torch.allclose(t_out.logits[offsets[j]:offsets[j + 1]], out.logits, atol=1e-6)
            assert torch.allclose(t_out.hidden[-1][offsets[j]:offsets[j + 1]], out.hidden[-1], atol=1e-6)


# ----------------------------------------------------------------------- no gradient to the teacher
@pytest.mark.parametrize("name", TEACHER_OUTPUT)
def test_gradients_never_reach_the_teacher(ppi, name):
    teacher = _teacher(ppi)
    t = predict_graphs(teacher, ppi.graphs["train"])
    # outputs that *could* take gradients: a loss that forgot to detach them would fill .grad
    leaf = ModelOutput(t.logits.clone().requires_grad_(True), tuple(h.clone().requires_grad_(True) for h in t.hidden))
    t_state = copy.deepcopy(teacher.state_dict())
    torch.manual_seed(1)
    student = MODELS.get("gcn")(in_dim=ppi.num_features, num_classes=ppi.num_classes, hidden=6)
    d = DISTILLERS.get(name)(**_small_kwargs(name))
    d.setup(ppi, student, leaf)
    s_state = copy.deepcopy(student.state_dict())
    opt = torch.optim.Adam(list(student.parameters()) + list(d.parameters()), lr=0.01)
    terms = d.train_epoch(make_batches(ppi, d, leaf), student, opt, leaf)
    assert math.isfinite(terms["loss"]) and len(terms) >= 3
    assert leaf.logits.grad is None and all(h.grad is None for h in leaf.hidden)
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, t_state[k]) for k, v in teacher.state_dict().items())
    assert any(not torch.equal(v, s_state[k]) for k, v in student.state_dict().items())  # the student learned


def test_fit_on_multigraph_view_keeps_teacher_fixed_and_no_longer_refuses(ppi):
    teacher = _teacher(ppi)
    t_out = predict_graphs(teacher, ppi.graphs["train"])
    before = t_out.logits.clone()
    student = MODELS.get("gat")(in_dim=ppi.num_features, num_classes=ppi.num_classes, hidden=4, heads=2,
                                num_layers=2, dropout=0.0, attn_dropout=0.0)
    d = DISTILLERS.get("kd+gcrd")(proj_dim=8, max_samples=6)
    d.setup(ppi, student, t_out)
    res = fit(student, d, ppi, t_out, TrainConfig(epochs=3, lr=0.01, weight_decay=0.0, patience=10))
    assert res.epochs_run == 3 and res.batching == "full" and math.isfinite(res.best_val)
    assert all(math.isfinite(h["loss"]) and {"task", "kd", "gcrd"} <= set(h) for h in res.history)
    assert torch.equal(t_out.logits, before)


@pytest.mark.parametrize("name", NO_MULTIGRAPH)
def test_distillers_without_multigraph_form_are_refused_by_name(ppi, name):
    t_out = predict_graphs(_teacher(ppi), ppi.graphs["train"])
    student = MODELS.get("mlp")(in_dim=ppi.num_features, num_classes=ppi.num_classes, hidden=4)
    with pytest.raises(ValueError, match=rf"dataset 'ppi' is multi-graph .*distiller '{name}' does not support "
                                         r"multi-graph datasets \(its sa_mlp student"):
        fit(student, DISTILLERS.get(name)(), ppi, t_out, TrainConfig(epochs=1))


# ----------------------------------------------------------------------- per-graph losses (golden)
def _two_graph_batch(seed=0, d_s=3, d_t=5, c=4):
    """Two graphs (5 and 4 nodes; a cycle with a chord and a path), batched; fixed float64 tensors."""
    import dgl

    g1 = dgl.graph(([0, 1, 2, 3, 4, 0], [1, 2, 3, 4, 0, 2]), num_nodes=5)
    g2 = dgl.graph(([0, 1, 2], [1, 2, 3]), num_nodes=4)
    g1, g2 = (dgl.add_reverse_edges(g) for g in (g1, g2))
    g = dgl.batch([g1, g2])
    gen = torch.Generator().manual_seed(seed)
    n = 9
    hs = torch.randn(n, d_s, generator=gen, dtype=torch.float64)
    ht = torch.randn(n, d_t, generator=gen, dtype=torch.float64)
    zs = torch.randn(n, c, generator=gen, dtype=torch.float64)
    zt = 2 * torch.randn(n, c, generator=gen, dtype=torch.float64)
    y = (torch.rand(n, c, generator=gen) > 0.5).double()
    idx = torch.arange(n)
    batch = Batch(g, torch.zeros(n, 1), y, idx, idx, multilabel=True, graph_sizes=torch.tensor([5, 4]))
    return batch, ModelOutput(zs, (hs,)), ModelOutput(zt, (ht,)), [np.arange(5), np.arange(5, 9)]


def _np_at(hs, ht):
    a, b = (hs ** 2).sum(1), (ht ** 2).sum(1)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return float(((a - b) ** 2).mean())


def _np_gsp_cosine(hs, ht):
    def k(h):
        u = h / np.linalg.norm(h, axis=1, keepdims=True)
        return u @ u.T
    return float(((k(hs) - k(ht)) ** 2).mean())


def _np_gcrd(hs, ht, tau):
    s = hs / np.linalg.norm(hs, axis=1, keepdims=True)
    t = ht / np.linalg.norm(ht, axis=1, keepdims=True)
    sc = s @ t.T / tau
    m = sc.max(1, keepdims=True)
    lse = (m[:, 0] + np.log(np.exp(sc - m).sum(1)))
    return float((lse - np.diag(sc)).mean())


def test_at_gsp_gcrd_are_means_over_the_graphs_of_a_batch():
    batch, s_out, t_out, segs = _two_graph_batch()
    hs, ht = s_out.hidden[0].numpy(), t_out.hidden[0].numpy()
    ht3 = ht[:, :3]                                         # equal widths for G-CRD without heads
    cases = [
        ("at", {"beta": 1.0}, t_out, _np_at, ht),
        ("gsp", {"beta": 1.0, "proj_dim": 0, "kernel": "cosine"}, t_out, _np_gsp_cosine, ht),
        ("gcrd", {"beta": 1.0, "proj_dim": 0, "tau": 0.5}, ModelOutput(t_out.logits, (t_out.hidden[0][:, :3],)),
         lambda a, b: _np_gcrd(a, b, 0.5), ht3),
    ]
    for name, kw, tout, ref, ht_np in cases:
        d = DISTILLERS.get(name)(**kw)
        got = float(d.aux_loss(batch, s_out, tout))
        want = np.mean([ref(hs[s], ht_np[s]) for s in segs])
        pooled = ref(hs, ht_np)                                # pairs nodes of the two graphs
        assert got == pytest.approx(want, rel=1e-9), name
        assert abs(got - pooled) > 1e-3 * abs(pooled), name
        # one graph (no graph_sizes) is the plain formula on all rows, as before
        single = Batch(batch.graph, batch.x, batch.y, batch.train_idx, batch.kd_idx, True)
        assert float(d.aux_loss(single, s_out, tout)) == pytest.approx(pooled, rel=1e-9), name


def test_gsp_samples_within_each_graph():
    batch, s_out, t_out, segs = _two_graph_batch(seed=3)
    d = DISTILLERS.get("gsp")(beta=1.0, proj_dim=0, kernel="cosine", max_samples=3)
    d.reset_generator(11)
    got = float(d.aux_loss(batch, s_out, t_out))
    gen = torch.Generator().manual_seed(11)
    hs, ht = s_out.hidden[0].numpy(), t_out.hidden[0].numpy()
    want = []
    for s in segs:
        pick = s[torch.randperm(len(s), generator=gen)[:3].numpy()]
        want.append(_np_gsp_cosine(hs[pick], ht[pick]))
    assert got == pytest.approx(float(np.mean(want)), rel=1e-9)


def test_lsp_on_a_batch_uses_each_graphs_own_edges():
    batch, s_out, t_out, segs = _two_graph_batch(seed=1)
    d = DISTILLERS.get("lsp")(beta=1.0, kernel="rbf", reduction="edge")
    got = float(d.aux_loss(batch, s_out, t_out))
    hs, ht = s_out.hidden[0].numpy(), t_out.hidden[0].numpy()
    src, dst = (e.numpy() for e in batch.graph.edges())
    owner = np.repeat([0, 1], [5, 4])
    assert (owner[src] == owner[dst]).all()                  # no edge joins the two graphs
    kl = 0.0
    for i in range(9):                                       # softmax over i's in-edges, explicit
        js = src[dst == i]
        ks = np.exp(-0.5 * ((hs[js] - hs[i]) ** 2).sum(1))
        kt = np.exp(-0.5 * ((ht[js] - ht[i]) ** 2).sum(1))
        ps, pt = np.exp(ks) / np.exp(ks).sum(), np.exp(kt) / np.exp(kt).sum()
        kl += float((pt * (np.log(pt) - np.log(ps))).sum())
    assert got == pytest.approx(kl / len(src), rel=1e-9)


def test_multilabel_kd_on_a_batch_is_bce_with_tempered_sigmoid_targets():
    batch, s_out, t_out, _ = _two_graph_batch(seed=2)
    lam, T = 0.3, 2.0
    terms = DISTILLERS.get("kd")(lam=lam, T=T).loss(batch, s_out, t_out)
    zs, zt, y = s_out.logits.numpy(), t_out.logits.numpy(), batch.y.numpy()
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731

    def bce(target, z):
        p = sig(z)
        return float(-(target * np.log(p) + (1 - target) * np.log(1 - p)).mean())

    task, kd = bce(y, zs), T * T * bce(sig(zt / T), zs / T)
    assert float(terms["task"]) == pytest.approx(task, rel=1e-6)   # task_loss casts labels to float32
    assert float(terms["kd"]) == pytest.approx(kd, rel=1e-9)
    assert float(terms["loss"]) == pytest.approx((1 - lam) * task + lam * kd, rel=1e-6)
    # kd+<x> uses the same multi-label term
    d = DISTILLERS.get("kd+at")(lam=lam, T=T, kl_reduction="batchmean", beta=0.0)
    assert float(d.loss(batch, s_out, t_out)["kd"]) == pytest.approx(kd, rel=1e-9)


# ----------------------------------------------------------------------- analysis on validation graphs
def test_analysis_pools_the_validation_graphs(ppi):
    teacher = _teacher(ppi)
    torch.manual_seed(2)
    student = MODELS.get("gcn")(in_dim=ppi.num_features, num_classes=ppi.num_classes, hidden=6, dropout=0.5)
    t_train = predict_graphs(teacher, ppi.graphs["train"])
    assert analysis_columns(t_train, student, ppi) == {}          # no teacher model: val outputs unknown
    cols = analysis_columns(t_train, student, ppi, teacher=teacher)
    teacher.eval()
    student.eval()
    ts, ss, pairs, off = [], [], [], 0
    with torch.no_grad():
        for part in ppi.graphs["val"]:
            ts.append(teacher(part.graph, part.x).hidden[-1].double().numpy())
            ss.append(student(part.graph, part.x).hidden[-1].double().numpy())
            src, dst = part.graph.edges()
            pairs += [(off + int(a), off + int(b)) for a, b in zip(src, dst) if a != b]
            off += part.num_nodes
    assert off == SIZES[20] + SIZES[21]
    norm = lambda h: h / np.linalg.norm(h, axis=1, keepdims=True)  # noqa: E731
    t, s = norm(np.concatenate(ts)), norm(np.concatenate(ss))
    assert cols["cka"] == pytest.approx(linear_cka(s, t), rel=1e-9)
    a, b = np.array(pairs).T
    want_local = np.corrcoef(1 - (t[a] * t[b]).sum(1), 1 - (s[a] * s[b]).sum(1))[0, 1]
    assert cols["local_corr"] == pytest.approx(want_local, rel=1e-9)
    iu = np.triu_indices(off, k=1)
    want_global = np.corrcoef((1 - t @ t.T)[iu], (1 - s @ s.T)[iu])[0, 1]
    assert cols["global_corr"] == pytest.approx(want_global, rel=1e-9)


# ----------------------------------------------------------------------- end to end through the CLI
def _records(results: Path, suite: str):
    return [read_record(p) for p in sorted((results / "runs" / suite).glob("*.json"))]


def _check_distill_record(r):
    assert r["status"] == "ok" and r["error"] is None and r["dataset"] == "ppi" and r["metric"] == "micro_f1"
    for k in ("test", "val", "teacher_test", "teacher_val", "cka", "global_corr", "local_corr"):
        assert isinstance(r[k], float) and math.isfinite(r[k]), (r["distiller"], k)
    assert 0 <= r["test"] <= 100 and 0 <= r["cka"] <= 1 + 1e-9


def test_every_teacher_output_distiller_through_the_cli(ppi_root, tmp_path):
    suite_file = tmp_path / "mg.yaml"
    suite_file.write_text(yaml.safe_dump(SUITE))
    args = ["run", "--suite", str(suite_file), "--data-dir", str(ppi_root), "--cache-dir", str(tmp_path / "cache"),
            "--results-dir", str(tmp_path / "res"), "--no-report", "--fail-fast"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    recs = _records(tmp_path / "res", "mg-test")
    assert sorted(r["distiller"] for r in recs) == sorted(TEACHER_OUTPUT)
    for r in recs:
        _check_distill_record(r)
        assert r["teacher"] == "gat" and r["student"] == "gcn"
        assert "robust_feat_0.5" in r and "robust_drop_0.5" in r and math.isfinite(r["robust_summary_feat"])
        assert r["speedup_full"] > 0 and "latency_online2_ms" in r   # timed on the first test graph
    assert len({r["teacher_test"] for r in recs}) == 1                # one cached teacher
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert again.exit_code == 0 and "11 runs (11 done)" in again.output, again.output


def test_default_suite_ppi_kd_rows_through_the_cli(ppi_root, tmp_path):
    sets = ["train.epochs=2", "models.gcn.hidden=6", "models.gat.hidden=4", "models.gat.heads=2",
            "models.sage.hidden=6", "models.mlp.hidden=6", "robustness=false"]
    args = ["run", "--suite", "default", "--dataset", "ppi", "--distiller", "kd", "--seeds", "0",
            "--data-dir", str(ppi_root), "--cache-dir", str(tmp_path / "cache"), "--results-dir",
            str(tmp_path / "res"), "--no-report", "--no-timing", "--fail-fast"]
    args += [x for s in sets for x in ("--set", s)]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    recs = _records(tmp_path / "res", "default")
    assert sorted(r["teacher"] for r in recs) == ["gat", "gcn", "sage"]
    for r in recs:
        _check_distill_record(r)
        assert r["student"] == "mlp" and r["distiller"] == "kd"
        assert json.loads(r["hparams"])["distiller"] == {"lam": 1.0, "T": 1.0, "kl_reduction": "batchmean",
                                                        "kd_nodes": "all"}


def test_gcrd_suite_ppi_configuration_through_the_cli(ppi_root, tmp_path):
    sets = ["train.epochs=2", "models.gat.hidden=8", "models.gat.train.epochs=2", "models.gat-2l.hidden=4",
            "models.gat-5l.hidden=4", "distillers.fitnet.proj_dim=8", "distillers.gcrd.proj_dim=8",
            "robustness=false"]
    args = ["run", "--suite", "gcrd", "--dataset", "ppi", "--student", "gat-2l", "--seeds", "0",
            "--data-dir", str(ppi_root), "--cache-dir", str(tmp_path / "cache"), "--results-dir",
            str(tmp_path / "res"), "--no-report", "--no-timing", "--fail-fast"]
    args += [x for s in sets for x in ("--set", s)]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    by_distiller = {}
    for r in _records(tmp_path / "res", "gcrd"):
        by_distiller.setdefault(r["distiller"], []).append(r)
    assert set(by_distiller) == {"none", "kd", "fitnet", "at", "lsp", "gcrd"}
    (none,) = by_distiller["none"]
    assert none["status"] == "ok" and none["teacher"] is None
    for name in ("kd", "fitnet", "at", "lsp", "gcrd"):
        for r in by_distiller[name]:
            _check_distill_record(r)
            assert r["teacher"] == "gat" and r["student"] == "gat-2l"
    hp = {k: [json.loads(r["hparams"])["distiller"] for r in rs] for k, rs in by_distiller.items()}
    # PPI: KD fixed at the reference's multi-label values (no search); the beta / tau grids of METHODS.md
    (kd,) = hp["kd"]
    assert kd["lam"] == 0.5 and kd["T"] == 1.0 and {h["kernel"] for h in hp["lsp"]} == {"rbf"}
    assert sorted(h["beta"] for h in hp["at"]) == [100.0, 1000.0, 10000.0]
    assert sorted((h["beta"], h["tau"]) for h in hp["gcrd"]) == [  # + the PPI script's beta 0.1
        (b, t) for b in (0.01, 0.05, 0.1) for t in (0.05, 0.075, 0.1)]
    assert {h["max_samples"] for h in hp["gcrd"]} == {16384}
