"""Real datasets of the data root (GKD_BENCH_DATA): counts of its README, split protocols,
homophily statistics, and the ``gkd-bench datasets`` command.

Skipped cleanly when GKD_BENCH_DATA is unset or a file is absent. Golden values:
the README table of the shared data, the largest-component sizes published by
GLNN (Zhang et al., ICLR 2022, Table 7: cora 2485 / 5069, citeseer 2110 / 3668,
a-computer 13381 / 245778, a-photo 7487 / 119043), and Platonov et al.'s
homophily table (github.com/yandex-research/heterophilous-graphs README).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import gkd_bench  # noqa: F401
from gkd_bench.data import DatasetError
from gkd_bench.registry import DATASETS

ROOT = os.environ.get("GKD_BENCH_DATA")


def need(*rel):
    if not ROOT:
        pytest.skip("GKD_BENCH_DATA is not set")
    missing = [r for r in rel if not (Path(ROOT) / r).exists()]
    if missing:
        pytest.skip(f"files absent under {ROOT}: {missing}")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("gkdcache"))


_memo = {}


def load(name, cache, **kw):
    key = (name, tuple(sorted(kw.items())))
    if key not in _memo:
        _memo[key] = DATASETS.get(name)(root=ROOT, cache=cache, **kw)
    return _memo[key]


def undirected_pairs(g) -> int:
    src, dst = g.edges()
    k = src != dst
    return len({(min(a, b), max(a, b)) for a, b in zip(src[k].tolist(), dst[k].tolist())})


def check_disjoint_cover(d, cover=True):
    s = {k: set(d.splits[k].tolist()) for k in ("train", "val", "test")}
    assert not (s["train"] & s["val"]) and not (s["train"] & s["test"]) and not (s["val"] & s["test"])
    if cover:
        assert len(s["train"]) + len(s["val"]) + len(s["test"]) == d.num_nodes


# --------------------------------------------------------------------------- README counts
README = [  # name, protocol, files, nodes, features, classes, metric
    ("cora", None, ["planetoid/ind.cora.x"], 2708, 1433, 7, "accuracy"),
    ("citeseer", None, ["planetoid/ind.citeseer.x"], 3327, 3703, 6, "accuracy"),
    ("chameleon", None, ["geom-gcn/new_data/chameleon/out1_graph_edges.txt"], 2277, 2325, 5, "accuracy"),
    ("squirrel", None, ["geom-gcn/new_data/squirrel/out1_graph_edges.txt"], 5201, 2089, 5, "accuracy"),
    ("actor", None, ["geom-gcn/new_data/film/out1_graph_edges.txt"], 7600, 932, 5, "accuracy"),
    ("texas", None, ["geom-gcn/new_data/texas/out1_graph_edges.txt"], 183, 1703, 5, "accuracy"),
    ("wisconsin", None, ["geom-gcn/new_data/wisconsin/out1_graph_edges.txt"], 251, 1703, 5, "accuracy"),
    ("cornell", "platonov", ["platonov/cornell.npz"], 183, 1703, 5, "accuracy"),
    ("minesweeper", None, ["platonov/minesweeper.npz"], 10000, 7, 2, "roc_auc"),
    ("tolokers", None, ["platonov/tolokers.npz"], 11758, 10, 2, "roc_auc"),
]


@pytest.mark.parametrize("name,protocol,files,n,f,c,metric", README, ids=[r[0] for r in README])
def test_readme_counts(cache, name, protocol, files, n, f, c, metric):
    need(*files)
    d = load(name, cache, protocol=protocol)
    assert (d.num_nodes, d.num_features, d.num_classes, d.metric) == (n, f, c, metric)
    assert d.graph.num_nodes() == n and len(torch.unique(d.y)) == c


def test_cora_edges(cache):
    need("planetoid/ind.cora.x")
    d = load("cora", cache)
    assert d.graph.num_edges() == 10556 and undirected_pairs(d.graph) == 5278


# raw file counts (README) and what GLNN's largest-connected-component rule keeps (GLNN Table 7)
CPF = [("cora", "cpf/cora.npz", 2708, 1433, 7, 2485, 5069),
       ("citeseer", "cpf/citeseer.npz", 3312, 3703, 6, 2110, 3668),
       ("amazon-computers", "gnn-benchmark/amazon_electronics_computers.npz", 13752, 767, 10, 13381, 245778),
       ("amazon-photo", "gnn-benchmark/amazon_electronics_photo.npz", 7650, 745, 8, 7487, 119043),
       ("coauthor-cs", "gnn-benchmark/ms_academic_cs.npz", 18333, 6805, 15, 18333, 81894)]


@pytest.mark.parametrize("name,file,n_raw,f,c,n_lcc,e_lcc", CPF, ids=[r[0] for r in CPF])
def test_cpf_counts_raw_and_lcc(cache, name, file, n_raw, f, c, n_lcc, e_lcc):
    from gkd_bench.datasets.cpf import read_npz

    need(file)
    z = read_npz(Path(ROOT) / file, ["adj_shape", "attr_shape", "labels"])
    assert int(z["adj_shape"][0]) == n_raw and int(z["attr_shape"][1]) == f and len(np.unique(z["labels"])) == c
    d = load(name, cache, protocol="cpf", seed=0)
    assert (d.num_nodes, d.num_features, d.num_classes) == (n_lcc, f, c)
    assert undirected_pairs(d.graph) == e_lcc
    assert d.graph.num_edges() == 2 * e_lcc + n_lcc          # both directions + one self-loop per node
    assert d.graph.has_edges_between(torch.arange(n_lcc), torch.arange(n_lcc)).all()


def test_cpf_raw_binary_features(cache):
    need("cpf/cora.npz")
    d = load("cora", cache, protocol="cpf", seed=0)
    assert set(torch.unique(d.x).tolist()) == {0.0, 1.0} and d.x.sum(1).max() > 1  # not row-normalised


def test_cornell_geom_gcn_file_is_texas_copy_and_refused(cache):
    """The shared data's cornell feature file is texas's (see MANIFEST.tsv): the loader refuses it."""
    need("geom-gcn/new_data/cornell/out1_node_feature_label.txt")
    a = Path(ROOT) / "geom-gcn/new_data/cornell/out1_node_feature_label.txt"
    b = Path(ROOT) / "geom-gcn/new_data/texas/out1_node_feature_label.txt"
    if a.read_bytes() != b.read_bytes():
        pytest.skip("cornell's geom-gcn file has been replaced")
    with pytest.raises(DatasetError, match="official texas/out1_node_feature_label.txt"):
        DATASETS.get("cornell")(root=ROOT, cache=cache)


# --------------------------------------------------------------------------- protocols
def glnn_reference_split(labels, seed, n_train=20, n_val=30):
    """GLNN's sample_per_class/get_train_val_test_split, written as its literal loops."""
    rng = np.random.RandomState(seed)
    classes = sorted(set(labels.tolist()))

    def per_class(k, forbidden):
        out = []
        for c in classes:
            pool = [i for i in range(len(labels)) if labels[i] == c and i not in forbidden]
            out.append(rng.choice(pool, k, replace=False))
        return np.concatenate(out)

    train = per_class(n_train, set())
    val = per_class(n_val, set(train.tolist()))
    test = np.setdiff1d(np.arange(len(labels)), np.concatenate([train, val]))
    return train, val, test


@pytest.mark.parametrize("seed", [0, 1])
def test_cpf_split_equals_glnn_sampling(cache, seed):
    need("cpf/citeseer.npz")
    d = load("citeseer", cache, protocol="cpf", seed=seed)
    tr, va, te = glnn_reference_split(d.y.numpy(), seed)
    assert np.array_equal(d.splits["train"].numpy(), tr)
    assert np.array_equal(d.splits["val"].numpy(), va)
    assert np.array_equal(d.splits["test"].numpy(), te)


def test_cpf_protocol_sizes_disjoint_deterministic(cache):
    need("gnn-benchmark/amazon_electronics_photo.npz")
    a0 = load("amazon-photo", cache, seed=0)
    assert a0.protocol == "cpf" and a0.split_index == 0
    assert [len(a0.splits[k]) for k in ("train", "val")] == [20 * 8, 30 * 8]
    assert np.bincount(a0.y[a0.splits["train"]].numpy()).tolist() == [20] * 8
    assert np.bincount(a0.y[a0.splits["val"]].numpy()).tolist() == [30] * 8
    check_disjoint_cover(a0)
    again = DATASETS.get("amazon-photo")(root=ROOT, cache=cache, seed=0)
    other = load("amazon-photo", cache, seed=1)
    assert all(torch.equal(again.splits[k], a0.splits[k]) for k in a0.splits)
    assert not torch.equal(other.splits["train"], a0.splits["train"])
    assert torch.equal(other.x, a0.x)  # only the split depends on the seed


GEOM = [("chameleon", "chameleon"), ("squirrel", "squirrel"), ("actor", "film"), ("texas", "texas"),
        ("wisconsin", "wisconsin")]


@pytest.mark.parametrize("name,stem", GEOM, ids=[g[0] for g in GEOM])
def test_geom_gcn_splits_identical_to_files(cache, name, stem):
    need(f"geom-gcn/new_data/{stem}/out1_graph_edges.txt", f"geom-gcn/splits/{stem}_split_0.6_0.2_9.npz")
    for seed in (3, 9):
        d = load(name, cache, seed=seed)
        assert d.protocol == "geom-gcn" and d.split_index == seed % 10
        z = np.load(Path(ROOT) / f"geom-gcn/splits/{stem}_split_0.6_0.2_{seed % 10}.npz")
        for key in ("train", "val", "test"):
            assert np.array_equal(d.splits[key].numpy(), np.flatnonzero(z[f"{key}_mask"]))
        fr = [len(d.splits[k]) / d.num_nodes for k in ("train", "val", "test")]
        assert np.allclose(fr, [0.48, 0.32, 0.20], atol=0.01)
        check_disjoint_cover(d)
    assert load(name, cache, seed=13).split_index == 3


def test_geom_gcn_graph_equals_platonov_copy(cache):
    """Our undirected, loop-free geom-gcn chameleon = Platonov et al.'s chameleon.npz edge set."""
    need("geom-gcn/new_data/chameleon/out1_graph_edges.txt", "platonov/chameleon.npz")
    d = load("chameleon", cache, seed=0)
    e = np.load(Path(ROOT) / "platonov/chameleon.npz")["edges"]
    theirs = {(min(a, b), max(a, b)) for a, b in e.tolist()}
    src, dst = d.graph.edges()
    ours = {(min(a, b), max(a, b)) for a, b in zip(src.tolist(), dst.tolist())}
    assert ours == theirs and d.graph.num_edges() == 2 * len(theirs)


PLATONOV = [("chameleon-filtered", "chameleon_filtered"), ("squirrel-filtered", "squirrel_filtered"),
            ("minesweeper", "minesweeper"), ("tolokers", "tolokers")]


@pytest.mark.parametrize("name,file", PLATONOV, ids=[p[0] for p in PLATONOV])
def test_platonov_ten_splits_identical_to_file(cache, name, file):
    need(f"platonov/{file}.npz")
    z = np.load(Path(ROOT) / f"platonov/{file}.npz")
    ks = range(10) if name != "tolokers" else (0, 7)
    for k in ks:
        d = DATASETS.get(name)(root=ROOT, cache=cache, seed=k + 10)
        assert d.protocol == "platonov" and d.split_index == k
        for key in ("train", "val", "test"):
            assert np.array_equal(d.splits[key].numpy(), np.flatnonzero(z[f"{key}_masks"][k]))
        check_disjoint_cover(d, cover=False)
    assert d.graph.num_edges() == 2 * len(z["edges"])


def test_planetoid_and_geom_gcn_protocols_on_cora(cache):
    need("planetoid/ind.cora.x", "geom-gcn/splits/cora_split_0.6_0.2_2.npz")
    d = load("cora", cache)
    assert [len(d.splits[k]) for k in ("train", "val", "test")] == [140, 500, 1000]
    g = load("cora", cache, protocol="geom-gcn", seed=2)
    z = np.load(Path(ROOT) / "geom-gcn/splits/cora_split_0.6_0.2_2.npz")
    assert np.array_equal(g.splits["test"].numpy(), np.flatnonzero(z["test_mask"]))


def test_unknown_protocol_is_an_error(cache):
    need("platonov/minesweeper.npz")
    with pytest.raises(ValueError, match="protocol 'cpf' is not available for dataset 'minesweeper'"):
        DATASETS.get("minesweeper")(root=ROOT, cache=cache, protocol="cpf")


def test_suite_without_protocol_uses_loader_default():
    from gkd_bench.spec import expand

    suite = {"name": "t", "datasets": {"chameleon": {}, "amazon-photo": {}, "cora": {},
                                       "minesweeper": {"protocol": "platonov"}},
             "models": {"mlp": {}}, "distillers": {"none": {}},
             "experiments": [{"student": "mlp", "distiller": "none"}]}
    got = {s.dataset: s.protocol for s in expand(suite)}
    assert got == {"chameleon": "geom-gcn", "amazon-photo": "cpf", "cora": "planetoid", "minesweeper": "platonov"}


# --------------------------------------------------------------------------- statistics
def test_homophily_by_hand():
    import dgl
    from gkd_bench.dataset_stats import adjusted_homophily, edge_homophily, undirected_edges

    # path 0-1-2-3 (+ a self-loop, ignored), labels 0 0 1 1
    g = dgl.to_bidirected(dgl.graph(([0, 1, 2], [1, 2, 3])))
    g = dgl.add_edges(g, [2], [2])
    y = torch.tensor([0, 0, 1, 1])
    assert edge_homophily(g, y) == pytest.approx(4 / 6)
    # degrees 1,2,2,1 -> p = (3/6, 3/6), sum p^2 = 1/2 -> (2/3 - 1/2) / (1/2) = 1/3
    assert adjusted_homophily(g, y) == pytest.approx(1 / 3)
    assert undirected_edges(g) == 3


@pytest.mark.parametrize("name,h_edge,h_adj", [("minesweeper", 0.68, 0.01), ("tolokers", 0.59, 0.09)])
def test_homophily_matches_platonov_table(cache, name, h_edge, h_adj):
    from gkd_bench.dataset_stats import dataset_stats

    need(f"platonov/{name}.npz")
    s = dataset_stats(name, ROOT, cache)
    assert abs(s["edge_homophily"] - h_edge) <= 0.005 and abs(s["adjusted_homophily"] - h_adj) <= 0.005


def test_datasets_command(tmp_path):
    from click.testing import CliRunner

    from gkd_bench.cli import main

    need("planetoid/ind.cora.x")
    res = CliRunner().invoke(main, ["datasets", "--dataset", "cora,ppi", "--data-dir", ROOT,
                                    "--cache-dir", str(tmp_path)], env={"GKD_BENCH_OFFLINE": "1"})
    assert res.exit_code == 0, res.output
    cora = next(ln for ln in res.output.splitlines() if ln.startswith("| cora"))
    assert [c.strip() for c in cora.strip("|").split("|")][:7] == ["cora", "2708", "5278", "1433", "7",
                                                                   "accuracy", "planetoid"]
    ppi = next(ln for ln in res.output.splitlines() if ln.startswith("| ppi"))
    assert ppi.rstrip(" |").endswith("no") and "ppi: missing" in res.output


def test_roc_auc_ranks_confident_nodes_apart():
    """AUC from the class-1 log-odds: softmax probabilities round to 1.0 in float32 above a logit gap of
    ~17, which would tie the three confident nodes below (75.0 instead of 100)."""
    from sklearn.metrics import roc_auc_score

    from gkd_bench.metrics import score

    logits = torch.tensor([[0.0, 20.0], [0.0, 30.0], [0.0, 25.0], [0.0, -1.0]])
    y = torch.tensor([0, 1, 1, 0])
    assert score("roc_auc", logits, y) == pytest.approx(100.0)
    assert 100 * roc_auc_score(y.numpy(), torch.softmax(logits, -1)[:, 1].numpy()) == pytest.approx(75.0)
    rng = np.random.RandomState(1)  # ordinary logits: the same AUC as from probabilities
    z, t = torch.from_numpy(rng.randn(200, 2)).float(), torch.from_numpy(rng.randint(0, 2, 200))
    assert score("roc_auc", z, t) == pytest.approx(100 * roc_auc_score(t.numpy(), torch.softmax(z, -1)[:, 1].numpy()))
    assert score("roc_auc", z[:, :1], t) == pytest.approx(100 * roc_auc_score(t.numpy(), z[:, 0].numpy()))
    assert math.isnan(score("roc_auc", z, torch.zeros(200, dtype=torch.long)))


def test_accuracy_equals_ogb_evaluator():
    os.environ.setdefault("OUTDATED_IGNORE", "1")
    from ogb.nodeproppred import Evaluator

    from gkd_bench.metrics import score

    rng = np.random.RandomState(0)
    logits = torch.from_numpy(rng.randn(500, 40))
    y = torch.from_numpy(rng.randint(0, 40, 500))
    ref = Evaluator("ogbn-arxiv").eval({"y_true": y.view(-1, 1).numpy(),
                                        "y_pred": logits.argmax(1, keepdim=True).numpy()})["acc"]
    assert score("accuracy", logits, y) == pytest.approx(100 * ref)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_loader_declares_its_protocols_and_metric(name):
    import inspect

    loader = DATASETS.get(name)
    assert loader.default_protocol in loader.protocols
    assert loader.metric in ("accuracy", "micro_f1", "roc_auc")
    params = inspect.signature(loader).parameters
    assert {"root", "cache", "protocol", "seed"} <= set(params) and params["protocol"].default is None
