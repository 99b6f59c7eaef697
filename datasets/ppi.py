"""Protein-protein interaction graphs (Zitnik & Leskovec, 2017; GraphSAGE, Hamilton et al., 2017).

``ppi``: 24 graphs, 50 features, 121 binary labels per node (multi-label,
metric micro-F1), 20 training, 2 validation and 2 test graphs (protocol
``ppi``). Files: ``<data root>/ppi/<mode>_{graph.json,feats.npy,labels.npy,
graph_id.npy}`` for ``mode`` in train, valid, test -- the content of DGL's
official ``https://data.dgl.ai/dataset/ppi.zip`` (what DGL's ``PPIDataset``
reads from its ``ppi_4b14ad03`` folder). ``<mode>_graph.json`` is a
networkx node-link graph of all the mode's nodes (ids 0..n-1 = rows of the
``.npy`` arrays); ``<mode>_graph_id.npy`` gives each node's graph (1..20
train, 21..22 valid, 23..24 test).

Why not DGL's ``PPIDataset``: DGL 1.1.3 parses the JSON with
``networkx.readwrite.json_graph.node_link_graph(data)``, whose default key
for the edge list became ``"edges"`` in networkx 3.6 (installed here), while
the official files store it under ``"links"``: the class fails with
``KeyError: 'edges'``. The files are therefore read here with the same
semantics as DGL: an undirected JSON graph gives both edge directions,
duplicate edges collapse (``nx.DiGraph``), and each graph is the
node-induced subgraph of its nodes in id order.

Returns a multi-graph GraphData: ``graphs = {"train": [20], "val": [2],
"test": [2]}``, each a GraphData of one graph whose ``splits`` put all its
nodes in its role; the top-level ``graph``/``x``/``y``/``splits`` are those
of the first training graph.
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional

import numpy as np
import torch

from gkd_bench.data import DatasetError, GraphData
from gkd_bench.datasets._io import describe_loader, check_edges, data_root, ensure_files, files_digest, validate
from gkd_bench.registry import DATASETS

URL = "https://data.dgl.ai/dataset/ppi.zip"
SOURCE = f"PPI (Zitnik & Leskovec 2017) as distributed by DGL: {URL}, extracted into <data root>/ppi/"
MODES = {"train": "train", "valid": "val", "test": "test"}   # file prefix -> split role
EXPECTED_GRAPHS = {"train": 20, "valid": 2, "test": 2}
SUFFIXES = ("graph.json", "feats.npy", "labels.npy", "graph_id.npy")


def _load_npy(path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DatasetError(f"{path}: truncated or not a .npy array ({type(e).__name__}: {e})") from e


def read_ppi_mode(folder, mode: str, name: str = "ppi") -> List[GraphData]:
    """Read the graphs of one mode (train/valid/test) from DGL's PPI files in ``folder``.

    Returns:
        one GraphData per graph id, in increasing id order; ``x`` float32
        ``[n, 50]``, ``y`` float32 ``[n, 121]``, all nodes in the split of the role.

    Raises:
        DatasetError: naming the file: unreadable JSON/npy, node ids that are not
            0..n-1, arrays whose lengths disagree, edges outside the nodes,
            labels that are not 0/1.
    """
    import dgl

    paths = {s: folder / f"{mode}_{s}" for s in SUFFIXES}
    try:
        with open(paths["graph.json"]) as f:
            g_data = json.load(f)
        ids = np.asarray([d["id"] for d in g_data["nodes"]])
        links = g_data["links"] if "links" in g_data else g_data["edges"]
        src = np.asarray([e["source"] for e in links], dtype=np.int64)
        dst = np.asarray([e["target"] for e in links], dtype=np.int64)
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{paths['graph.json']}: not a node-link JSON graph "
                           f"({type(e).__name__}: {e})") from e
    feats = _load_npy(paths["feats.npy"])
    labels = _load_npy(paths["labels.npy"])
    gid = _load_npy(paths["graph_id.npy"])
    n = len(ids)
    if not np.issubdtype(ids.dtype, np.integer) or not np.array_equal(np.sort(ids), np.arange(n)):
        raise DatasetError(f"{paths['graph.json']}: node ids must be the integers 0..{n - 1}")
    for key, arr, nd in (("feats.npy", feats, 2), ("labels.npy", labels, 2), ("graph_id.npy", gid, 1)):
        if arr.ndim != nd or arr.shape[0] != n:
            raise DatasetError(f"{paths[key]}: shape {arr.shape}, expected {n} rows "
                               f"({nd}-d) for the {n} nodes of {paths['graph.json'].name}")
    check_edges(src, dst, n, paths["graph.json"])
    if not g_data.get("directed", False):
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    pairs = np.unique(np.stack([src, dst], 1), axis=0) if len(src) else np.zeros((0, 2), np.int64)
    full = dgl.graph((torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])), num_nodes=n)
    x_all = torch.from_numpy(np.asarray(feats, dtype=np.float32))
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    role = MODES[mode]
    out = []
    for g_id in np.unique(gid):
        nodes = torch.from_numpy(np.flatnonzero(gid == g_id))
        sub = dgl.node_subgraph(full, nodes, store_ids=False)
        k = len(nodes)
        empty = torch.zeros(0, dtype=torch.long)
        splits = {r: (torch.arange(k) if r == role else empty) for r in ("train", "val", "test")}
        part = GraphData(name=name, graph=sub, x=x_all[nodes], y=y_all[nodes], splits=splits,
                         num_classes=int(y_all.shape[1]), multilabel=True, metric="micro_f1", protocol="ppi",
                         extra={"graph_id": int(g_id)})
        out.append(validate(part, f"{paths['labels.npy']} (graph id {int(g_id)})"))
    return out


def load_ppi(*, root=None, cache=None, protocol: Optional[str] = None, seed: int = 0) -> GraphData:
    """Load PPI (module docstring): 20/2/2 graphs, 121 labels, micro-F1.

    ``seed`` does not change the data (the split is fixed); ``split_index`` is 0.

    Raises:
        MissingDataError: names every missing file, the layout and the source.
        DatasetError: see :func:`read_ppi_mode`; or graph counts other than 20/2/2,
            or a feature / label width that differs between modes.
    """
    protocol = protocol or "ppi"
    if protocol != "ppi":
        raise ValueError(f"protocol {protocol!r} is not available for dataset 'ppi'; it has: ppi")
    root = data_root(root)
    rel = [f"ppi/{m}_{s}" for m in MODES for s in SUFFIXES]
    paths = ensure_files("ppi", root, rel, None,
                         layout="ppi/{train,valid,test}_{graph.json,feats.npy,labels.npy,graph_id.npy}",
                         source=SOURCE)
    folder = root / "ppi"
    graphs: Dict[str, List[GraphData]] = {}
    for mode, role in MODES.items():
        parts = read_ppi_mode(folder, mode)
        if len(parts) != EXPECTED_GRAPHS[mode]:
            raise DatasetError(f"{folder / f'{mode}_graph_id.npy'}: {len(parts)} {mode} graphs, "
                               f"expected {EXPECTED_GRAPHS[mode]}")
        graphs[role] = parts
    widths = {(p.num_features, p.num_classes) for parts in graphs.values() for p in parts}
    if len(widths) != 1:
        raise DatasetError(f"{folder}: feature/label widths differ between graphs: {sorted(widths)}")
    version = "ppi-" + files_digest(paths)
    for parts in graphs.values():
        for p in parts:
            p.version = version
    first = graphs["train"][0]
    return first.replace(graphs=graphs, version=version, split_index=0)


DATASETS.register("ppi")(describe_loader(load_ppi, "ppi", ("ppi",), "micro_f1"))
