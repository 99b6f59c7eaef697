"""Loaders of datasets that are not in the shared data root, on tiny file sets written here in
exactly the official formats; corrupted files; missing files.

Every writer below produces the layout the loader documents (and the official
distribution uses): Planetoid pickles, DGL's PPI files, the OGB csv.gz
layout, LINKX's split file, Platonov et al.'s npz and the gnn-benchmark npz.
"""
from __future__ import annotations

import gzip
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import gkd_bench  # noqa: F401 - fills the registries
from gkd_bench.data import DatasetError, MissingDataError
from gkd_bench.registry import DATASETS


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No download attempts: every missing file must fail fast."""
    monkeypatch.setenv("GKD_BENCH_OFFLINE", "1")
    monkeypatch.setenv("OUTDATED_IGNORE", "1")


def load(name, root, cache, **kw):
    return DATASETS.get(name)(root=str(root), cache=str(cache), **kw)


def snapshot(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --------------------------------------------------------------------------- writers (official formats)
def write_planetoid(root: Path, name: str, n_train=14, n_val=500, n_unlab=6, n_test=20, f=9, c=7, seed=0):
    """Planetoid pickles ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index} (Yang et al. 2016 format)."""
    rng = np.random.RandomState(seed)
    n_all = n_train + n_val + n_unlab
    n = n_all + n_test
    feats = (rng.rand(n, f) < 0.3).astype(np.float32)
    labels = np.arange(n) % c
    onehot = np.eye(c)[labels]
    test_index = np.arange(n_all, n)[::-1]  # stored unordered, as in the real files
    folder = root / "planetoid"
    folder.mkdir(parents=True)
    objs = {"x": sp.csr_matrix(feats[:n_train]), "y": onehot[:n_train], "allx": sp.csr_matrix(feats[:n_all]),
            "ally": onehot[:n_all], "tx": sp.csr_matrix(feats[test_index]), "ty": onehot[test_index],
            "graph": {i: [(i + 1) % n, (i + 3) % n] for i in range(n)}}
    for k, v in objs.items():
        with open(folder / f"ind.{name}.{k}", "wb") as fh:
            pickle.dump(v, fh, protocol=2)
    (folder / f"ind.{name}.test.index").write_text("\n".join(str(i) for i in test_index) + "\n")
    return feats, labels, n


def write_ppi(root: Path, n_per_graph=3, f=50, c=121, links_key="links", seed=0):
    """DGL's PPI files: <mode>_graph.json (node-link), _feats.npy, _labels.npy, _graph_id.npy.

    ``n_per_graph``: nodes of every graph, or a list of 24 sizes (graph ids 1..24 in order).
    """
    rng = np.random.RandomState(seed)
    folder = root / "ppi"
    folder.mkdir(parents=True)
    sizes = list(n_per_graph) if isinstance(n_per_graph, (list, tuple)) else [n_per_graph] * 24
    written = {}
    for mode, ids in (("train", range(1, 21)), ("valid", range(21, 23)), ("test", range(23, 25))):
        counts = [sizes[i - 1] for i in ids]
        gids = np.repeat(np.array(list(ids)), counts)
        n = len(gids)
        links = []
        for g in range(len(ids)):  # a path inside each graph, stored once (undirected)
            base = sum(counts[:g])
            links += [{"source": base + i, "target": base + i + 1} for i in range(counts[g] - 1)]
        doc = {"directed": False, "multigraph": False, "graph": {},
               "nodes": [{"id": i, "test": mode == "test", "val": mode == "valid"} for i in range(n)],
               links_key: links}
        (folder / f"{mode}_graph.json").write_text(json.dumps(doc))
        feats = rng.randn(n, f).astype(np.float32)
        labels = (rng.rand(n, c) < 0.3).astype(np.float32)
        np.save(folder / f"{mode}_feats.npy", feats)
        np.save(folder / f"{mode}_labels.npy", labels)
        np.save(folder / f"{mode}_graph_id.npy", gids)
        written[mode] = (feats, labels, gids)
    return written


def _csv_gz(path: Path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        for r in rows:
            fh.write(",".join(str(v) for v in np.atleast_1d(r)) + "\n")


def write_ogb(root: Path, name="ogbn-arxiv", n=20, f=6, seed=0):
    """The OGB layout ogb/<ogbn_name>/{RELEASE_v1.txt, raw/*.csv.gz, split/<type>/*.csv.gz}."""
    rng = np.random.RandomState(seed)
    folder = root / "ogb" / name.replace("-", "_")
    folder.mkdir(parents=True)
    (folder / "RELEASE_v1.txt").write_text("v1\n")
    edges = np.array([[i, (i + 1) % n] for i in range(n)] + [[i, (i + 5) % n] for i in range(0, n, 2)]
                     + [[3, 3]])  # a ring, chords and one self-loop
    feats = rng.randn(n, f).round(4)
    labels = rng.randint(0, 40 if name == "ogbn-arxiv" else 47, size=n)
    raw = folder / "raw"
    _csv_gz(raw / "edge.csv.gz", edges)
    _csv_gz(raw / "node-feat.csv.gz", feats)
    _csv_gz(raw / "node-label.csv.gz", labels)
    _csv_gz(raw / "num-node-list.csv.gz", [n])
    _csv_gz(raw / "num-edge-list.csv.gz", [len(edges)])
    years = 2000 + np.arange(n)
    if name == "ogbn-arxiv":
        _csv_gz(raw / "node_year.csv.gz", years)
    split_type = "time" if name == "ogbn-arxiv" else "sales_ranking"
    perm = rng.permutation(n)
    split = {"train": perm[:10], "valid": perm[10:15], "test": perm[15:]}
    for k, ids in split.items():
        _csv_gz(folder / "split" / split_type / f"{k}.csv.gz", ids)
    return {"edges": edges, "feats": feats, "labels": labels, "split": split, "years": years}


def write_linkx_splits(root: Path, n=20, k=5, seed=0):
    """LINKX's data/splits/arxiv-year-splits.npy: an object array of dicts train/valid/test."""
    rng = np.random.RandomState(seed)
    splits = []
    for _ in range(k):
        p = rng.permutation(n)
        splits.append({"train": torch.as_tensor(p[:10]), "valid": p[10:15], "test": p[15:]})
    path = root / "linkx" / "splits" / "arxiv-year-splits.npy"
    path.parent.mkdir(parents=True)
    arr = np.empty(len(splits), dtype=object)
    arr[:] = splits
    np.save(path, arr, allow_pickle=True)
    return splits


def write_platonov(root: Path, file: str, n=40, f=5, c=3, seed=0, **override):
    """Platonov et al.'s npz: node_features, node_labels, edges (each undirected edge once), 10 x N masks."""
    rng = np.random.RandomState(seed)
    arrays = {"node_features": rng.randn(n, f).astype(np.float32), "node_labels": np.arange(n) % c,
              "edges": np.array([[i, (i + 1) % n] for i in range(n)] + [[0, n // 2]], dtype=np.int64)}
    tr, va, te = np.zeros((10, n), bool), np.zeros((10, n), bool), np.zeros((10, n), bool)
    for k in range(10):
        p = rng.permutation(n)
        tr[k, p[: n // 2]], va[k, p[n // 2: 3 * n // 4]], te[k, p[3 * n // 4:]] = True, True, True
    arrays.update(train_masks=tr, val_masks=va, test_masks=te)
    arrays.update(override)
    path = root / "platonov" / f"{file}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def write_gnn_benchmark(root: Path, file: str, seed=0, **override):
    """gnn-benchmark CSR npz: a 120-node 2-class component (directed edges, one self-loop,
    count features) plus an isolated 3-node path that the largest-component rule drops."""
    rng = np.random.RandomState(seed)
    n_big, n = 120, 123
    rows = list(range(n_big - 1)) + [5, 7]
    cols = list(range(1, n_big)) + [5, 60]        # path 0-1-...-119 stored one way, self-loop 5, chord 7->60
    rows += [120, 121]
    cols += [121, 122]                            # small component 120-121-122
    adj = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))
    attr = sp.csr_matrix(rng.poisson(0.5, size=(n, 8)).astype(np.float32))
    labels = np.array([i % 2 for i in range(n)], dtype=np.int64)
    arrays = {"adj_data": adj.data, "adj_indices": adj.indices, "adj_indptr": adj.indptr,
              "adj_shape": np.array(adj.shape), "attr_data": attr.data, "attr_indices": attr.indices,
              "attr_indptr": attr.indptr, "attr_shape": np.array(attr.shape), "labels": labels}
    arrays.update(override)
    path = root / "gnn-benchmark" / f"{file}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return adj, attr.toarray(), labels


# --------------------------------------------------------------------------- fixture datasets
def test_pubmed_planetoid_fixture(tmp_path):
    feats, labels, n = write_planetoid(tmp_path / "root", "pubmed", c=3)
    before = snapshot(tmp_path / "root")
    d = load("pubmed", tmp_path / "root", tmp_path / "cache")
    assert d.num_nodes == n and d.num_classes == 3 and d.protocol == "planetoid"
    assert [len(d.splits[k]) for k in ("train", "val", "test")] == [14, 500, 20]
    # row-normalised features in node-id order (test rows put back at their test.index positions)
    want = feats / np.maximum(feats.sum(1, keepdims=True), 1)
    assert np.allclose(d.x.numpy(), want, atol=1e-6)
    assert torch.equal(d.y, torch.from_numpy(labels))
    assert d.graph.num_edges() == 2 * 2 * n  # i->i+1, i->i+3 stored once, both directions
    assert snapshot(tmp_path / "root") == before  # DGL's processed files went to the cache


def test_ppi_fixture(tmp_path):
    written = write_ppi(tmp_path / "root")
    d = load("ppi", tmp_path / "root", tmp_path / "cache")
    assert {k: len(v) for k, v in d.graphs.items()} == {"train": 20, "val": 2, "test": 2}
    assert d.multilabel and d.metric == "micro_f1" and d.num_classes == 121 and d.num_features == 50
    for mode, role in (("train", "train"), ("valid", "val"), ("test", "test")):
        feats, labels, gids = written[mode]
        for i, part in enumerate(d.graphs[role]):
            rows = np.flatnonzero(gids == np.unique(gids)[i])
            assert part.num_nodes == 3 and part.graph.num_edges() == 4  # path of 3, both directions
            assert np.array_equal(part.x.numpy(), feats[rows])
            assert np.array_equal(part.y.numpy(), labels[rows]) and part.y.dtype == torch.float32
            assert len(part.splits[role]) == 3 and all(len(part.splits[r]) == 0 for r in part.splits if r != role)
    assert d.graph is d.graphs["train"][0].graph and torch.equal(d.x, d.graphs["train"][0].x)


def test_ppi_accepts_networkx36_edges_key(tmp_path):
    write_ppi(tmp_path / "root", links_key="edges")
    d = load("ppi", tmp_path / "root", tmp_path / "cache")
    assert sum(p.graph.num_edges() for p in d.graphs["train"]) == 20 * 4


def test_ogbn_arxiv_fixture(tmp_path):
    w = write_ogb(tmp_path / "root", "ogbn-arxiv")
    before = snapshot(tmp_path / "root")
    d = load("ogbn-arxiv", tmp_path / "root", tmp_path / "cache")
    n = 20
    und = {tuple(sorted(e)) for e in w["edges"].tolist() if e[0] != e[1]}
    assert d.num_nodes == n and d.num_classes == 40 and d.protocol == "ogb" and d.metric == "accuracy"
    assert d.graph.num_edges() == 2 * len(und) + n      # undirected + one self-loop per node (GLNN)
    src, dst = d.graph.edges()
    pairs = set(zip(src.tolist(), dst.tolist()))
    assert all((v, u) in pairs for u, v in pairs) and all((i, i) in pairs for i in range(n))
    assert np.allclose(d.x.numpy(), w["feats"], atol=1e-6)
    assert np.array_equal(d.y.numpy(), w["labels"])
    for k, role in (("train", "train"), ("valid", "val"), ("test", "test")):
        assert np.array_equal(d.splits[role].numpy(), w["split"][k])
    assert snapshot(tmp_path / "root") == before
    assert list((tmp_path / "cache").rglob("dgl_data_processed"))  # OGB's processed file: in the cache
    again = load("ogbn-arxiv", tmp_path / "root", tmp_path / "cache")   # from OGB's processed cache
    assert torch.equal(again.y, d.y) and again.version == d.version


def test_ogbn_self_loops_option(tmp_path):
    """self_loops=false: the undirected graph without any self-loop (G-CRD's PyG to_symmetric());
    true: exactly one per node; a non-boolean is an error naming the option."""
    w = write_ogb(tmp_path / "root", "ogbn-arxiv")
    und = {tuple(sorted(e)) for e in w["edges"].tolist() if e[0] != e[1]}
    bare = load("ogbn-arxiv", tmp_path / "root", tmp_path / "cache", self_loops=False)
    src, dst = bare.graph.edges()
    assert bare.graph.num_edges() == 2 * len(und) and not bool((src == dst).any())
    looped = load("ogbn-arxiv", tmp_path / "root", tmp_path / "cache", self_loops=True)
    assert looped.graph.num_edges() == 2 * len(und) + 20
    with pytest.raises(ValueError, match="option self_loops must be true, false or null; got 'yes'"):
        load("ogbn-arxiv", tmp_path / "root", tmp_path / "cache", self_loops="yes")
    w2 = write_ogb(tmp_path / "root2", "ogbn-products")
    prod = load("ogbn-products", tmp_path / "root2", tmp_path / "cache2", self_loops=False)
    assert prod.graph.num_edges() == 2 * len(w2["edges"]) - 2  # the fixture's one self-loop, both copies


def test_ogbn_products_fixture(tmp_path):
    w = write_ogb(tmp_path / "root", "ogbn-products")
    d = load("ogbn-products", tmp_path / "root", tmp_path / "cache")
    assert d.num_classes == 47 and d.graph.num_edges() == 2 * len(w["edges"])  # OGB adds inverse edges
    assert np.array_equal(d.splits["val"].numpy(), w["split"]["valid"])


def test_ogb_missing_release_file_fails_before_ogb(tmp_path):
    write_ogb(tmp_path / "root", "ogbn-arxiv")
    (tmp_path / "root" / "ogb" / "ogbn_arxiv" / "RELEASE_v1.txt").unlink()
    with pytest.raises(MissingDataError, match="RELEASE_v1.txt"):  # OGB itself would ask on stdin
        load("ogbn-arxiv", tmp_path / "root", tmp_path / "cache")


def test_arxiv_year_fixture(tmp_path):
    w = write_ogb(tmp_path / "root", "ogbn-arxiv")
    splits = write_linkx_splits(tmp_path / "root")
    d = load("arxiv-year", tmp_path / "root", tmp_path / "cache", seed=7)
    # years 2000..2019: quantiles 2003.8, 2007.6, 2011.4, 2015.2 -> 4 years per class (by hand)
    assert np.array_equal(d.y.numpy(), (w["years"] - 2000) // 4)
    assert d.num_classes == 5 and d.protocol == "linkx" and d.split_index == 7 % 5
    assert np.array_equal(d.splits["train"].numpy(), np.asarray(splits[2]["train"]))
    assert np.array_equal(d.splits["val"].numpy(), splits[2]["valid"])
    und = {tuple(sorted(e)) for e in w["edges"].tolist() if e[0] != e[1]}
    assert d.graph.num_edges() == 2 * len(und)  # undirected, no self-loops (LINKX default)


def test_even_quantile_labels_against_numpy_digitize():
    from gkd_bench.datasets.arxiv_year import even_quantile_labels

    years = np.random.RandomState(0).randint(1990, 2021, size=500).astype(float)
    q = np.quantile(years, [0.2, 0.4, 0.6, 0.8])
    assert np.array_equal(even_quantile_labels(years), np.digitize(years, q, right=False))


def test_arxiv_year_missing_names_split_and_ogb_files(tmp_path):
    with pytest.raises(MissingDataError) as e:
        load("arxiv-year", tmp_path / "root", tmp_path / "cache")
    assert "arxiv-year-splits.npy" in str(e.value) and "ogbn_arxiv/raw/edge.csv.gz" in str(e.value)


@pytest.mark.parametrize("name,file,c,metric", [("roman-empire", "roman_empire", 18, "accuracy"),
                                                ("amazon-ratings", "amazon_ratings", 5, "accuracy"),
                                                ("questions", "questions", 2, "roc_auc")])
def test_platonov_fixture(tmp_path, name, file, c, metric):
    arr = write_platonov(tmp_path / "root", file, n=40, c=c)
    d = load(name, tmp_path / "root", tmp_path / "cache", seed=13)
    assert d.num_nodes == 40 and d.num_classes == c and d.metric == metric and d.split_index == 3
    assert d.graph.num_edges() == 2 * len(arr["edges"])      # stored once, loaded both ways
    for key in ("train", "val", "test"):
        assert np.array_equal(d.splits[key].numpy(), np.flatnonzero(arr[f"{key}_masks"][3]))
    assert np.array_equal(d.x.numpy(), arr["node_features"])


def test_coauthor_physics_fixture(tmp_path):
    adj, attr, labels = write_gnn_benchmark(tmp_path / "root", "ms_academic_phy")
    d = load("coauthor-physics", tmp_path / "root", tmp_path / "cache", seed=1)
    assert d.num_nodes == 120 and d.protocol == "cpf"                 # the 3-node component is dropped
    assert d.graph.num_edges() == 2 * (119 + 1) + 120                # path + chord, both ways, + self-loops
    assert np.array_equal(d.x.numpy(), attr[:120])                   # raw counts, no normalisation
    assert [len(d.splits[k]) for k in ("train", "val", "test")] == [40, 60, 20]
    for k in ("train", "val"):
        assert np.bincount(d.y[d.splits[k]].numpy()).tolist() == [len(d.splits[k]) // 2] * 2


@pytest.mark.parametrize("name,expect", [
    ("pubmed", ["planetoid/ind.pubmed.x", "planetoid/ind.pubmed.test.index"]),
    ("ppi", ["ppi/train_graph.json", "ppi/test_graph_id.npy"]),
    ("ogbn-arxiv", ["ogb/ogbn_arxiv/RELEASE_v1.txt", "ogb/ogbn_arxiv/split/time/test.csv.gz"]),
    ("ogbn-products", ["ogb/ogbn_products/raw/edge.csv.gz", "ogb/ogbn_products/split/sales_ranking/train.csv.gz"]),
    ("roman-empire", ["platonov/roman_empire.npz"]),
    ("amazon-ratings", ["platonov/amazon_ratings.npz"]),
    ("questions", ["platonov/questions.npz"]),
    ("coauthor-physics", ["gnn-benchmark/ms_academic_phy.npz"]),
])
def test_missing_files_are_named(tmp_path, name, expect):
    with pytest.raises(MissingDataError) as e:
        load(name, tmp_path / "empty", tmp_path / "cache")
    msg = str(e.value)
    for rel in expect:
        assert str(tmp_path / "empty" / rel) in msg
    assert "expected layout" in msg and "source" in msg


# --------------------------------------------------------------------------- corrupted files
def test_truncated_npz(tmp_path):
    write_platonov(tmp_path / "root", "questions", c=2)
    p = tmp_path / "root" / "platonov" / "questions.npz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"questions\.npz: truncated or not a valid npz"):
        load("questions", tmp_path / "root", tmp_path / "cache")


@pytest.mark.parametrize("override,match", [
    ({"edges": np.zeros((5, 3), np.int64)}, r"edges has shape \(5, 3\), expected \[\*, 2\]"),
    ({"node_labels": np.zeros(39, np.int64)}, r"node_labels has shape \(39,\), expected \[40\]"),
    ({"train_masks": np.zeros((10, 7), bool)}, r"train_masks has shape \(10, 7\)"),
    ({"node_features": np.full((40, 5), np.nan, np.float32)}, r"NaN or inf in 40 node row"),
    ({"node_labels": np.r_[-1, np.arange(39) % 5]}, r"labels out of range \[0, 5\): min -1"),
    ({"edges": np.array([[0, 40]])}, r"edge target ids span \[40, 40\], outside the 40 nodes"),
    ({"test_masks": np.ones((10, 40), bool)}, r"splits 'train' and 'test' share"),
])
def test_corrupted_platonov_file(tmp_path, override, match):
    write_platonov(tmp_path / "root", "amazon_ratings", c=5, **override)
    with pytest.raises(DatasetError, match=match) as e:
        load("amazon-ratings", tmp_path / "root", tmp_path / "cache")
    assert "amazon_ratings.npz" in str(e.value)


@pytest.mark.parametrize("override,match", [
    ({"adj_indptr": np.arange(5)}, r"adj_indptr/adj_indices/adj_data are inconsistent"),
    ({"labels": np.zeros(7, np.int64)}, r"labels has shape \(7,\), expected \[123\]"),
    ({"attr_data": np.full(3, np.nan, np.float32), "attr_indices": np.arange(3),
      "attr_indptr": np.r_[0, np.full(123, 3)]}, r"attr_data contains NaN"),
])
def test_corrupted_gnn_benchmark_file(tmp_path, override, match):
    write_gnn_benchmark(tmp_path / "root", "ms_academic_phy", **override)
    with pytest.raises(DatasetError, match=match) as e:
        load("coauthor-physics", tmp_path / "root", tmp_path / "cache")
    assert "ms_academic_phy.npz" in str(e.value)


def test_corrupted_ppi_files(tmp_path):
    write_ppi(tmp_path / "root")
    folder = tmp_path / "root" / "ppi"
    labels = np.load(folder / "valid_labels.npy")
    labels[0, 0] = 2.0
    np.save(folder / "valid_labels.npy", labels)
    with pytest.raises(DatasetError, match=r"valid_labels\.npy.*must be 0 or 1"):
        load("ppi", tmp_path / "root", tmp_path / "cache")
    p = folder / "test_feats.npy"
    p.write_bytes(p.read_bytes()[:100])
    labels[0, 0] = 1.0
    np.save(folder / "valid_labels.npy", labels)
    with pytest.raises(DatasetError, match=r"test_feats\.npy: truncated"):
        load("ppi", tmp_path / "root", tmp_path / "cache")


def test_corrupted_ogb_file(tmp_path):
    write_ogb(tmp_path / "root", "ogbn-arxiv")
    p = tmp_path / "root" / "ogb" / "ogbn_arxiv" / "raw" / "node-label.csv.gz"
    p.write_bytes(p.read_bytes()[:10])
    with pytest.raises(DatasetError, match=r"OGB cannot read the files in .*ogbn_arxiv"):
        load("ogbn-arxiv", tmp_path / "root", tmp_path / "cache")


def write_geom_gcn(root: Path, stem: str, n=12, f=4, c=3, seed=0):
    """Geom-GCN text files (tab separated, header line) and 10 split files."""
    rng = np.random.RandomState(seed)
    folder = root / "geom-gcn" / "new_data" / stem
    folder.mkdir(parents=True)
    feats = (rng.rand(n, f) < 0.5).astype(int)
    labels = np.arange(n) % c
    lines = ["node_id\tfeature\tlabel"] + [f"{i}\t{','.join(map(str, feats[i]))}\t{labels[i]}" for i in range(n)]
    (folder / "out1_node_feature_label.txt").write_text("\n".join(lines) + "\n")
    edges = [(i, (i + 1) % n) for i in range(n)] + [(2, 2), (1, 0)]
    (folder / "out1_graph_edges.txt").write_text(
        "\n".join(["node_id\tnode_id"] + [f"{a}\t{b}" for a, b in edges]) + "\n")
    sp_dir = root / "geom-gcn" / "splits"
    sp_dir.mkdir(parents=True)
    for k in range(10):
        p = np.random.RandomState(k).permutation(n)
        masks = {m: np.zeros(n, np.uint8) for m in ("train_mask", "val_mask", "test_mask")}
        masks["train_mask"][p[:6]], masks["val_mask"][p[6:9]], masks["test_mask"][p[9:]] = 1, 1, 1
        np.savez(sp_dir / f"{stem}_split_0.6_0.2_{k}.npz", **masks)
    return feats, labels


def test_geom_gcn_fixture_through_dgl(tmp_path):
    feats, labels = write_geom_gcn(tmp_path / "root", "wisconsin")
    d = load("wisconsin", tmp_path / "root", tmp_path / "cache", seed=4)
    assert np.array_equal(d.x.numpy(), feats) and np.array_equal(d.y.numpy(), labels)
    assert d.graph.num_edges() == 2 * 12   # ring, both directions; duplicate (1,0) and loop (2,2) dropped
    split4 = np.load(tmp_path / "root" / "geom-gcn" / "splits" / "wisconsin_split_0.6_0.2_4.npz")
    assert np.array_equal(d.splits["test"].numpy(), np.flatnonzero(split4["test_mask"]))


def test_geom_gcn_truncated_split_file(tmp_path):
    write_geom_gcn(tmp_path / "root", "texas")
    p = tmp_path / "root" / "geom-gcn" / "splits" / "texas_split_0.6_0.2_3.npz"
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(DatasetError, match=r"cannot parse the Geom-GCN files in .*texas"):
        load("texas", tmp_path / "root", tmp_path / "cache")


def test_geom_gcn_refuses_another_datasets_file(tmp_path):
    """A WebKB file that is byte-for-byte another dataset's official file is refused."""
    from gkd_bench.datasets import geom_gcn

    write_geom_gcn(tmp_path / "root", "cornell")
    p = tmp_path / "root" / "geom-gcn" / "new_data" / "cornell" / "out1_graph_edges.txt"
    content = p.read_bytes()
    import hashlib

    fake = {("texas", "out1_graph_edges.txt"): (len(content), hashlib.sha256(content).hexdigest())}
    orig = geom_gcn.OFFICIAL_FILES
    geom_gcn.OFFICIAL_FILES = fake
    try:
        with pytest.raises(DatasetError, match=r"official texas/out1_graph_edges.txt of Geom-GCN"):
            load("cornell", tmp_path / "root", tmp_path / "cache")
    finally:
        geom_gcn.OFFICIAL_FILES = orig


# --------------------------------------------------------------------------- a sweep goes on
def test_sweep_skips_missing_dataset_and_runs_the_rest(tmp_path):
    from gkd_bench.runner import Runner
    from gkd_bench.spec import expand

    write_platonov(tmp_path / "root", "roman_empire", n=40, c=3)
    suite = {"name": "fx", "seeds": 0, "datasets": {"roman-empire": {}, "questions": {}},
             "train": {"epochs": 2, "patience": 2}, "models": {"mlp": {"model": "mlp", "hidden": 8}},
             "distillers": {"none": {}}, "experiments": [{"student": "mlp", "distiller": "none"}]}
    specs = expand(suite)
    runner = Runner(tmp_path / "results", data_root=str(tmp_path / "root"), cache_dir=str(tmp_path / "cache"),
                    timing=False)
    counts = runner.run(specs, progress=False)
    assert counts["ok"] == 1 and counts["skipped"] == 1
    recs = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("*.json")]
    skipped = [r for r in recs if r["status"] == "skipped"]
    assert skipped[0]["dataset"] == "questions" and "platonov/questions.npz" in skipped[0]["error"]
    assert {r["split"] for r in recs} == {"platonov"}


# ------------------------------------------------------------------ the cache under parallel workers
def test_stage_links_tolerates_a_worker_that_staged_the_same_link_meanwhile(tmp_path, monkeypatch):
    """Two Ray tasks staging one cache folder: the other worker creates the link between this worker's
    check and its own creation (a FileExistsError before); a stale link is replaced; a good one is kept."""
    from gkd_bench.datasets import _io

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a")
    b.write_text("b")
    folder = tmp_path / "stage"
    folder.mkdir()
    link = folder / "raw.txt"
    real_symlink, raced = os.symlink, []

    def racing(target, path, *args, **kwargs):
        if not raced:  # the other worker's link lands just before this worker creates its own
            raced.append(True)
            real_symlink(a.resolve(), link)
        return real_symlink(target, path, *args, **kwargs)

    monkeypatch.setattr(os, "symlink", racing)
    _io.stage_links({"raw.txt": a}, folder)
    monkeypatch.setattr(os, "symlink", real_symlink)
    assert raced
    assert link.read_text() == "a" and sorted(p.name for p in folder.iterdir()) == ["raw.txt"]
    _io.stage_links({"raw.txt": b}, folder)  # stale: replaced
    assert link.read_text() == "b"
    before = link.lstat().st_ino
    _io.stage_links({"raw.txt": b}, folder)  # already right: left alone
    assert link.lstat().st_ino == before and sorted(p.name for p in folder.iterdir()) == ["raw.txt"]
    (folder / "sub").mkdir()  # a directory where a link should go: an error, and no temporary link left
    (folder / "sub" / "x").write_text("x")
    with pytest.raises(OSError):
        _io.stage_links({"sub": a}, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["raw.txt", "sub"]


def test_stage_lock_excludes_another_process(tmp_path):
    """While one process prepares a stage (DGL/OGB write processed files there without a temporary
    name), another process cannot take the lock; it can once the first releases it."""
    import subprocess
    import sys

    from gkd_bench.datasets import _io

    pytest.importorskip("fcntl")
    folder = tmp_path / "dgl" / "planetoid-x"
    probe = ("import fcntl, sys\n"
             "f = open(sys.argv[1], 'a')\n"
             "try:\n    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "except BlockingIOError:\n    sys.exit(3)\n")
    lock = folder.parent / f".{folder.name}.lock"
    with _io.stage_lock(folder) as got:
        assert got == folder and lock.is_file()
        assert subprocess.run([sys.executable, "-c", probe, str(lock)]).returncode == 3
    assert subprocess.run([sys.executable, "-c", probe, str(lock)]).returncode == 0
