"""Alignahead / Alignahead++ (online KD, issue 6): pairings, the local-structure loss, peers without
gradient, initialisation, the alternating schedule, Runner records and resume, multi-graph data,
and the report's claims section."""
from __future__ import annotations

import copy
import json
import math

import pandas as pd
import pytest
import torch

import gkd_bench  # noqa: F401  (fills the registries)
from gkd_bench.claims import alignahead_claims
from gkd_bench.data import GraphData
from gkd_bench.fit import GRAPHS_PER_BATCH, TrainConfig, make_batch, make_batches
from gkd_bench.methods._distiller import StudentEnsemble
from gkd_bench.methods.alignahead import (Alignahead, layer_pairs, local_structure, local_structure_kl)
from gkd_bench.records import read_record, record_path
from gkd_bench.registry import DATASETS, DISTILLERS, MODELS
from gkd_bench.runner import Runner
from gkd_bench.spec import expand

GAT = dict(hidden=4, heads=2, num_layers=4, dropout=0.0, attn_dropout=0.0, residual=True)


def _graph_data(n=24, f=6, c=3, seed=0, multilabel=False, name="tiny-online"):
    import dgl

    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (4 * n,), generator=gen)
    dst = torch.randint(0, n, (4 * n,), generator=gen)
    keep = src != dst
    g = dgl.to_simple(dgl.to_bidirected(dgl.graph((src[keep], dst[keep]), num_nodes=n)))
    x = torch.randn(n, f, generator=gen)
    if multilabel:
        y = (torch.rand(n, c, generator=gen) > 0.5).float()
    else:
        y = torch.randint(0, c, (n,), generator=gen)
    perm = torch.randperm(n, generator=gen)
    splits = {"train": perm[: n // 3], "val": perm[n // 3: 2 * n // 3], "test": perm[2 * n // 3:]}
    return GraphData(name=name, graph=g, x=x, y=y, splits=splits, num_classes=c, multilabel=multilabel,
                     metric="micro_f1" if multilabel else "accuracy", version="t1", protocol="planetoid")


def _setup(K=2, variant="alignahead", data=None, **kw):
    data = data or _graph_data()
    torch.manual_seed(0)
    make = lambda: MODELS.get("gat")(in_dim=data.num_features, num_classes=data.num_classes, **{**GAT, **kw})  # noqa
    dist = DISTILLERS.get(variant)(num_students=K)
    students = dist.build_students(make(), make)
    dist.setup(data, students, None)
    opts = dist.make_optimizers(students, TrainConfig(lr=0.01, weight_decay=0.0))
    return data, dist, students, opts


# ---------------------------------------------------------------- pairings
EXPECTED = {
    3: {"same": [(0, 0), (1, 1), (2, 2)],
        "ahead-code": [(1, 0), (2, 1), (0, 2)],
        "ahead-paper": [(0, 1), (1, 2), (2, 0)]},
    5: {"same": [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)],
        "ahead-code": [(1, 0), (2, 1), (3, 2), (4, 3), (0, 4)],
        "ahead-paper": [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]},
}


@pytest.mark.parametrize("H", [3, 5])
@pytest.mark.parametrize("pairing", ["same", "ahead-code", "ahead-paper"])
def test_layer_pairs(H, pairing):
    assert layer_pairs(pairing, H) == EXPECTED[H][pairing]


@pytest.mark.parametrize("H", [3, 5])
def test_setup_pairs_follow_the_students_hidden_layers(H):
    data = _graph_data()
    make = lambda: MODELS.get("gat")(in_dim=6, num_classes=3, **{**GAT, "num_layers": H + 1})  # noqa: E731
    dist = Alignahead(num_students=2, pairing="ahead-paper")
    dist.setup(data, dist.build_students(make(), make), None)
    assert dist.pairs == EXPECTED[H]["ahead-paper"]


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="pairing must be one of same, ahead-code, ahead-paper"):
        layer_pairs("ahead", 3)
    with pytest.raises(ValueError, match="at least one hidden layer"):
        layer_pairs("same", 0)
    with pytest.raises(ValueError, match="num_students must be >= 1"):
        Alignahead(num_students=0)
    data = _graph_data()
    make = lambda: MODELS.get("gat")(in_dim=6, num_classes=3, **{**GAT, "num_layers": 1})  # noqa: E731
    dist = Alignahead()
    with pytest.raises(ValueError, match="at least one hidden layer"):
        dist.setup(data, dist.build_students(make(), make), None)


# --------------------------------------------------------- local structure
def test_local_structure_loss_matches_hand_computation():
    import dgl

    # edges j -> i: 1->0, 2->0, 0->1 ; node 2 has no incoming edge
    g = dgl.graph((torch.tensor([1, 2, 0]), torch.tensor([0, 0, 1])), num_nodes=3)
    f64 = dict(dtype=torch.float64, requires_grad=True)
    hl = torch.tensor([[0.0, 0.0], [50.0, -10.0], [0.0, 300.0]], **f64)
    hp = torch.tensor([[10.0, 0.0], [-30.0, 0.0], [100.0, 100.0]], **f64)

    def dist_l1(h, i, j):
        return sum(abs(a - b) for a, b in zip(h[i], h[j]))

    def softmax(vals):
        z = [math.exp(v) for v in vals]
        return [v / sum(z) for v in z]

    L, P = hl.tolist(), hp.tolist()
    # node 0: incoming from 1 and 2; e = exp(-||h_0 - h_j||_1 / 100), S = softmax over j of e
    sl = softmax([math.exp(-dist_l1(L, 0, 1) / 100), math.exp(-dist_l1(L, 0, 2) / 100)])
    sp = softmax([math.exp(-dist_l1(P, 0, 1) / 100), math.exp(-dist_l1(P, 0, 2) / 100)])
    kl0 = sum(p * math.log(p / q) for p, q in zip(sp, sl))
    want = (kl0 + 0.0 + 0.0) / 3   # node 1: one edge (KL 0), node 2: no edge; mean over 3 nodes

    s_l, s_p = local_structure(g, hl), local_structure(g, hp)
    assert torch.allclose(s_l, torch.tensor([sl[0], sl[1], 1.0], dtype=torch.float64), atol=1e-12)
    got = local_structure_kl(g, s_l, s_p)
    assert want > 1e-6 and got.item() == pytest.approx(want, rel=1e-9)
    got.backward()
    assert hl.grad is not None and hl.grad.abs().sum() > 0
    assert hp.grad is None   # the peer side carries no gradient
    # kernel_scale: the same hand computation with length scale 10
    sl10 = softmax([math.exp(-dist_l1(L, 0, 1) / 10), math.exp(-dist_l1(L, 0, 2) / 10)])
    s10 = local_structure(g, hl.detach(), 10.0)
    assert torch.allclose(s10, torch.tensor([sl10[0], sl10[1], 1.0], dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("chunk", [5, 8192])
def test_edge_l1_equals_the_unfused_dgl_expression_bit_for_bit(monkeypatch, chunk):
    """The chunked edge L1 distance gives the values and gradients of ``u_sub_v(h, h).abs().sum(-1)``
    exactly (published records were trained with the unfused form), also across chunk boundaries
    (chunk 5 on 100+ edges, last chunk partial), with and without autograd; bad shapes raise."""
    import dgl

    from gkd_bench.methods import alignahead as A

    monkeypatch.setattr(A, "EDGE_L1_CHUNK", chunk)
    g = _graph_data(n=40).graph
    assert g.num_edges() % 5 != 0 or chunk != 5  # a partial last chunk when chunk = 5
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(g.num_nodes(), 7, generator=gen)
    h[3] = h[4]  # equal rows: zero differences, sgn 0 in the backward
    w = torch.randn(g.num_edges(), generator=gen)
    h1, h2 = h.clone().requires_grad_(True), h.clone().requires_grad_(True)
    ref = dgl.ops.u_sub_v(g, h1, h1).abs().sum(-1)
    got = A.edge_l1(g, h2)
    assert torch.equal(got, ref)
    (torch.tanh(ref) * w).sum().backward()
    (torch.tanh(got) * w).sum().backward()
    assert torch.equal(h1.grad, h2.grad) and h2.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.equal(A.edge_l1(g, h), ref.detach())
    with pytest.raises(ValueError, match=r"h must be \[N, d\]"):
        A.edge_l1(g, h[0])


def test_kernel_scale_reaches_the_loss_and_is_validated():
    from gkd_bench.methods.alignahead_pp import AlignaheadPP

    assert DISTILLERS.get("alignahead++")(kernel_scale=5.0).kernel_scale == 5.0
    assert isinstance(DISTILLERS.get("alignahead++")(), AlignaheadPP)
    assert DISTILLERS.get("alignahead")().kernel_scale == 100.0
    with pytest.raises(ValueError, match="kernel_scale must be > 0, got 0"):
        DISTILLERS.get("alignahead")(kernel_scale=0)


# ------------------------------------------------------------ initialisation
def test_identical_init_flag():
    data = _graph_data()
    make = lambda: MODELS.get("gat")(in_dim=6, num_classes=3, **GAT)  # noqa: E731
    torch.manual_seed(0)
    same = Alignahead(num_students=3, identical_init=True).build_students(make(), make)
    torch.manual_seed(0)
    indep = Alignahead(num_students=3).build_students(make(), make)
    assert isinstance(same, StudentEnsemble) and len(same) == 3
    ref = same[0].state_dict()
    for m in same[1:]:
        assert all(torch.equal(ref[k], v) for k, v in m.state_dict().items())
    # independent: each parameter tensor differs between students (biases start at 0, skip them)
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        sa, sb = indep[a].state_dict(), indep[b].state_dict()
        weights = [k for k, v in sa.items() if v.abs().sum() > 0]
        assert weights and all(not torch.equal(sa[k], sb[k]) for k in weights)
    # student 0 is the model built first (same weights as `none`'s student at that seed)
    assert all(torch.equal(same[0].state_dict()[k], v) for k, v in indep[0].state_dict().items())


# ------------------------------------------------------- gradients / schedule
@pytest.mark.parametrize("variant", ["alignahead", "alignahead++"])
def test_no_gradient_reaches_a_peer(variant):
    data, dist, students, opts = _setup(K=3, variant=variant, heads=2)
    batch = make_batch(data, dist)
    before = [copy.deepcopy(m.state_dict()) for m in students]
    peers = [dist.peer_view(students[m], batch) for m in (1, 2)]
    assert all(not h.requires_grad for pv in peers for h in pv.hidden)
    terms = dist.learner_step(0, batch, students, opts[0], peers)
    expected_terms = {"loss", "task", "structure"} | ({"feature", "deep"} if variant == "alignahead++" else set())
    assert set(terms) == expected_terms and all(math.isfinite(v) for v in terms.values())
    assert terms["structure"] > 0
    own = list(students[0].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in own)
    for m in (1, 2):
        assert all(p.grad is None for p in students[m].parameters())
        if variant == "alignahead++":
            assert all(p.grad is None for p in dist.heads[m].parameters())
            assert all(p.grad is None for p in dist.projs[m].parameters())
            assert any(p.grad is not None for p in dist.heads[0].parameters())
        assert all(torch.equal(before[m][k], v) for k, v in students[m].state_dict().items())
    assert any(not torch.equal(before[0][k], v) for k, v in students[0].state_dict().items())


def test_alternating_schedule_with_cached_peers_equals_recomputing_them():
    """train_epoch (peers cached until they step) == the reference loop recomputing peers each step."""
    data = _graph_data()
    data, dist, students, opts = _setup(K=3, variant="alignahead++", data=data)
    twin_dist, twin_students = copy.deepcopy(dist), copy.deepcopy(students)
    twin_opts = twin_dist.make_optimizers(twin_students, TrainConfig(lr=0.01, weight_decay=0.0))
    batch = make_batch(data, dist)
    for _ in range(2):
        dist.train_epoch([batch], students, opts)
        for k in range(3):   # reference: each student in turn, peers recomputed on the batch
            peers = [twin_dist.peer_view(twin_students[m], batch) for m in range(3) if m != k]
            twin_dist.learner_step(k, batch, twin_students, twin_opts[k], peers)
    for a, b in zip(students, twin_students):
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.allclose(v, w, atol=1e-6), k


# ------------------------------------------------------------------ runner
@pytest.fixture
def tiny_registry(monkeypatch):
    monkeypatch.setitem(DATASETS._entries, "tiny-online", lambda **kw: _graph_data())

    def multi(**kw):
        parts = {"train": [_graph_data(10 + i, seed=i, multilabel=True) for i in range(3)],
                 "val": [_graph_data(12, seed=7, multilabel=True)],
                 "test": [_graph_data(14, seed=8, multilabel=True)]}
        return parts["train"][0].replace(graphs=parts, name="tiny-multi")

    monkeypatch.setitem(DATASETS._entries, "tiny-multi", multi)


SUITE = {"name": "online-test", "seeds": "0-1",
         "datasets": {"tiny-online": {"protocol": "planetoid"}},
         "train": {"epochs": 6, "lr": 0.01, "weight_decay": 0.0, "patience": 100},
         "models": {"gat": {"model": "gat", **GAT}},
         "distillers": {"none": {}, "ah1": {"distiller": "alignahead", "num_students": 1},
                        "ah3": {"distiller": "alignahead", "num_students": 3},
                        "pp2": {"distiller": "alignahead++", "num_students": 2}},
         "experiments": [{"student": "gat", "distiller": ["none", "ah1", "ah3", "pp2"]}]}


def test_online_runs_write_records_and_resume(tmp_path, tiny_registry):
    specs = expand(SUITE)
    assert len(specs) == 8
    runner = Runner(tmp_path, cache_dir=tmp_path / "cache", timing=False, fail_fast=True)
    counts = runner.run(specs, progress=False)
    assert counts["ok"] == 8
    assert len(list((tmp_path / "runs" / "online-test").glob("*.json"))) == 8
    recs = {(s.distiller["label"], s.seed): read_record(record_path(tmp_path, s.suite, s.run_id)) for s in specs}
    for seed in (0, 1):
        r3 = recs[("ah3", seed)]
        tests = [r3[f"test_s{k}"] for k in range(3)]
        assert r3["num_students"] == 3 and "test_s3" not in r3
        assert r3["test"] == pytest.approx(sum(tests) / 3)
        assert r3["test_min_student"] == min(tests) and r3["test_max_student"] == max(tests)
        vals = [r3[f"val_s{k}"] for k in range(3)]
        assert r3["best_student"] == vals.index(max(vals))
        assert r3["test_best_student"] == tests[r3["best_student"]]
        assert 0 <= r3["test_ensemble"] <= 100 and "val_ensemble" in r3
        assert r3["student_params"] == recs[("none", seed)]["student_params"]   # one student's
        assert set(json.loads(r3["hparams"])["distiller"]) >= {"num_students", "pairing", "identical_init"}
        # K = 1 without deep supervision is the student alone: same init, same steps, same scores
        assert recs[("ah1", seed)]["test"] == recs[("none", seed)]["test"]
        assert recs[("ah1", seed)]["val"] == recs[("none", seed)]["val"]
    again = Runner(tmp_path, cache_dir=tmp_path / "cache", timing=False).run(specs, progress=False)
    assert again["done"] == 8 and again["ok"] == 0

    from gkd_bench.report import leaderboard, load_runs

    lb = leaderboard(load_runs(tmp_path, ["online-test"]))
    row = lb[lb["distiller"] == "ah3"].iloc[0]
    assert {"test_s2_mean", "test_ensemble_mean", "test_min_student_mean"} <= set(lb.columns)
    none = lb[lb["distiller"] == "none"].iloc[0]
    assert row["gain_vs_none"] == pytest.approx(row["test_mean"] - none["test_mean"])


def test_multi_graph_batches_and_online_run(tmp_path, tiny_registry):
    data = DATASETS.get("tiny-multi")()
    torch.manual_seed(0)
    batches = make_batches(data, Alignahead())
    assert len(batches) == math.ceil(3 / GRAPHS_PER_BATCH)
    assert sum(b.graph.num_nodes() for b in batches) == 10 + 11 + 12
    assert all(len(b.train_idx) == b.graph.num_nodes() == b.x.shape[0] == b.y.shape[0] for b in batches)
    suite = {**SUITE, "datasets": {"tiny-multi": {"protocol": "planetoid"}}, "seeds": 0,
             "experiments": [{"student": "gat", "distiller": ["none", "pp2"]}]}
    specs = expand(suite)
    counts = Runner(tmp_path, cache_dir=tmp_path / "cache", timing=False, fail_fast=True).run(specs, progress=False)
    assert counts["ok"] == 2
    rec = read_record(record_path(tmp_path, specs[1].suite, specs[1].run_id))
    assert rec["metric"] == "micro_f1" and 0 <= rec["test_s1"] <= 100 and rec["num_students"] == 2


# ------------------------------------------------------------------ claims
def _lb_row(distiller_name, label, test_mean, students=(), gain=None, gain_std=0.1, K=None, fa=False, ds=False):
    hp = {} if distiller_name == "none" else {"num_students": K, "pairing": "ahead-code", "a": 1.0,
                                               "feature_align": fa, "deep_supervision": ds, "identical_init": False}
    row = {"dataset": "cora", "split": "planetoid", "setting": "transductive", "teacher": "-", "student": "gat",
           "distiller": label, "distiller_name": distiller_name, "n": 10, "test_mean": test_mean, "test_std": 1.0,
           "hparams": json.dumps({"distiller": hp})}
    for k, v in enumerate(students):
        row[f"test_s{k}_mean"] = v
    if students:
        row.update(test_min_student_mean=min(students), test_best_student_mean=max(students),
                   test_ensemble_mean=max(students) + 0.5, gain_vs_none=gain, gain_vs_none_std=gain_std,
                   gain_within_std=abs(gain) <= gain_std)
    return row


def test_claims_in_plain_words():
    lb = pd.DataFrame([
        _lb_row("none", "none", 80.0),
        _lb_row("alignahead", "ah-k2", 81.0, (80.5, 81.5), 1.0, K=2),
        _lb_row("alignahead", "ah-k3", 81.5, (81.0, 81.5, 82.0), 1.5, K=3),
        _lb_row("alignahead", "ah-k4", 82.0, (81.0, 82.0, 82.5, 82.5), 2.0, K=4),
        _lb_row("alignahead++", "pp-k2", 80.5, (79.5, 81.5), 0.5, K=2, fa=True, ds=True),
        _lb_row("alignahead++", "pp-k3", 80.3, (80.1, 80.3, 80.5), 0.3, K=3, fa=True, ds=True),
    ])
    md = alignahead_claims(lb)
    assert "### cora — planetoid split, transductive, student `gat`" in md
    lines = md.splitlines()
    ah = next(i for i, l in enumerate(lines) if l.startswith("- **Alignahead**"))
    pp = next(i for i, l in enumerate(lines) if l.startswith("- **Alignahead++**"))
    assert "yes (alone 80.00)" in lines[ah] and "K=4 yes (lowest student 81.00)" in lines[ah]
    assert lines[ah + 1].strip().startswith("Claim 2 (the gain grows with K): yes")
    assert "partly (alone 80.00)" in lines[pp] and "K=2 no (lowest student 79.50)" in lines[pp]
    assert "Claim 2 (the gain grows with K): no" in lines[pp + 1] and "no growth at K=2->3" in lines[pp + 1]
    # the table holds the alone row and the six online rows, numbers kept as 2-decimal text
    assert "| alone" in md and md.count("| Alignahead ") == 3 and "| 82.00 ± 1.00" in md
    assert alignahead_claims(lb[lb["distiller_name"] == "none"]) == ""
    # a train-time perturbed `none` row (leaderboard(include_perturbed=True)) is never the student alone
    noisy = {**_lb_row("none", "none", 50.0), "perturbation_kind": "train_noise"}
    mixed = pd.concat([pd.DataFrame([noisy]), lb.assign(perturbation_kind=None)], ignore_index=True)
    assert alignahead_claims(mixed) == md


def test_claim_one_compares_on_the_seeds_both_have_run():
    """Mid-sweep an online row may have fewer seeds than the student alone: claim 1 then compares with the
    alone mean on the row's own seeds (none_paired_mean from the leaderboard), and says so."""
    paired = {**_lb_row("alignahead", "ah-k2", 85.0, (84.6, 85.4), 2.3, K=2), "n": 1, "none_paired_mean": 82.7}
    lb = pd.DataFrame([_lb_row("none", "none", 86.0), paired,
                       _lb_row("alignahead", "ah-k3", 86.5, (85.5, 87.5), 0.5, K=3)])
    lines = alignahead_claims(lb).splitlines()
    ah = next(l for l in lines if l.startswith("- **Alignahead**"))
    assert "partly (alone 86.00)" in ah
    assert "K=2 yes (lowest student 84.60; alone 82.70 on its 1 seed)" in ah
    assert "K=3 no (lowest student 85.50)" in ah and "on its" not in ah.split("K=3")[1]


def test_leaderboard_pairs_the_alone_mean_by_seed(tiny_registry):
    """none_paired_mean: the `none` runs' mean over exactly the seeds an online config has (seed 0 only here,
    while `none` has seeds 0-2); gain_vs_none pairs the same seeds."""
    from gkd_bench.report import leaderboard
    from test_search import fake_record

    specs = expand({**SUITE, "seeds": "0-2", "experiments": [{"student": "gat", "distiller": ["none", "pp2"]}]})
    tests = {("none", 0): 80.0, ("none", 1): 82.0, ("none", 2): 84.0, ("pp2", 0): 81.5}
    runs = pd.DataFrame([fake_record(s, 70.0, tests[(s.distiller["label"], s.seed)]) for s in specs
                         if (s.distiller["label"], s.seed) in tests])
    lb = leaderboard(runs)
    row = lb[lb["distiller_name"] == "alignahead++"].iloc[0]
    assert row["n"] == 1 and row["none_paired_mean"] == pytest.approx(80.0)
    assert row["gain_vs_none"] == pytest.approx(1.5)
    assert lb[lb["distiller_name"] == "none"].iloc[0]["test_mean"] == pytest.approx(82.0)
