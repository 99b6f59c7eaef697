"""Heterophilous graphs of Platonov et al., "A critical look at the evaluation of GNNs under
heterophily: are we really making progress?" (ICLR 2023).

``roman-empire``, ``amazon-ratings``, ``minesweeper``, ``tolokers``,
``questions`` (their new datasets) and ``chameleon-filtered``,
``squirrel-filtered`` (chameleon/squirrel without duplicate nodes). Files:
``<data root>/platonov/<name with '_'>.npz`` as published in
github.com/yandex-research/heterophilous-graphs (``data/``), arrays
``node_features [N, F]``, ``node_labels [N]``, ``edges [E, 2]`` (each
undirected edge once) and ``train_masks``/``val_masks``/``test_masks``
``[10, N]``. DGL 1.1.3 has no class for them, so the npz is read directly,
as the authors' ``datasets.py`` does: ``dgl.graph(edges)`` then
``dgl.to_bidirected``, no self-loops.

Protocol ``platonov`` (the only one, default): split ``k = seed % 10`` of the
10 fixed splits in the file. Metric: ROC-AUC for the binary sets
(minesweeper, tolokers, questions; score = probability of class 1),
accuracy otherwise (as the authors).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from gkd_bench.data import DatasetError, GraphData
from gkd_bench.datasets._io import (describe_loader, check_edges, check_shape, data_root, ensure_files, files_digest,
                                    mask_to_index, read_npz, validate)
from gkd_bench.registry import DATASETS

URL = "https://github.com/yandex-research/heterophilous-graphs/raw/main/data/{file}.npz"
SOURCE = ("Platonov et al. (ICLR 2023), github.com/yandex-research/heterophilous-graphs/tree/main/data")
NAMES = ("roman-empire", "amazon-ratings", "minesweeper", "tolokers", "questions",
         "chameleon-filtered", "squirrel-filtered")
BINARY = ("minesweeper", "tolokers", "questions")
KEYS = ("node_features", "node_labels", "edges", "train_masks", "val_masks", "test_masks")


def platonov_path(name: str, root=None):
    """Path of ``platonov/<file>.npz`` for ``name`` (downloaded if missing and allowed).

    Raises:
        MissingDataError: the file is absent (names it, the layout and the official URL).
    """
    root = data_root(root)
    file = name.replace("-", "_")
    rel = f"platonov/{file}.npz"
    (path,) = ensure_files(name, root, [rel], {rel: URL.format(file=file)},
                           layout="platonov/<name with _>.npz (node_features, node_labels, edges, "
                                  "train_masks/val_masks/test_masks)",
                           source=f"{SOURCE}; {URL.format(file=file)}")
    return path


def platonov_data(name: str, root=None, seed: int = 0, metric: str = "accuracy") -> GraphData:
    """``name``'s npz as GraphData with fixed split ``seed % S`` (S = 10), graph ``to_bidirected``.

    Raises:
        MissingDataError: the file is absent. DatasetError: see :func:`read_platonov`.
    """
    import dgl

    path = platonov_path(name, root)
    arr = read_platonov(path, name)
    n = arr["x"].shape[0]
    k = seed % arr["masks"]["train"].shape[0]
    e = torch.from_numpy(arr["edges"])
    graph = dgl.to_bidirected(dgl.graph((e[:, 0], e[:, 1]), num_nodes=n))
    y = torch.from_numpy(arr["y"])
    splits = {key: mask_to_index(torch.from_numpy(m[k])) for key, m in arr["masks"].items()}
    data = GraphData(name=name, graph=graph, x=torch.from_numpy(np.asarray(arr["x"], dtype=np.float32)), y=y,
                     splits=splits, num_classes=int(y.max()) + 1 if len(y) else 0, metric=metric,
                     version="platonov-" + files_digest([path]), protocol="platonov", split_index=k)
    return validate(data, str(path))


def read_platonov(path, name: str = "") -> dict:
    """Read and check one file; returns its arrays (masks bool ``[S, N]``).

    Raises:
        DatasetError: naming ``path``: unreadable archive, missing arrays, wrong
            shapes or dtypes, edge ids outside the nodes, overlapping masks.
    """
    z = read_npz(path, KEYS)
    x = check_shape(z["node_features"], (None, None), "node_features", path)
    n = x.shape[0]
    y = check_shape(z["node_labels"], (n,), "node_labels", path)
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{path}: node_labels have dtype {y.dtype}, expected integers")
    edges = check_shape(z["edges"], (None, 2), "edges", path)
    if not np.issubdtype(edges.dtype, np.integer):
        raise DatasetError(f"{path}: edges have dtype {edges.dtype}, expected integers")
    check_edges(edges[:, 0], edges[:, 1], n, path)
    masks = {}
    for key in ("train", "val", "test"):
        m = check_shape(z[f"{key}_masks"], (None, n), f"{key}_masks", path)
        masks[key] = m.astype(bool)
    s = {m.shape[0] for m in masks.values()}
    if len(s) != 1 or 0 in s:
        raise DatasetError(f"{path}: train/val/test_masks hold {[m.shape[0] for m in masks.values()]} splits, "
                           f"expected the same number (10) in each")
    return {"x": x, "y": y.astype(np.int64), "edges": edges.astype(np.int64), "masks": masks}


def _loader(name: str):
    metric = "roc_auc" if name in BINARY else "accuracy"

    def load(*, root=None, cache=None, protocol: Optional[str] = None, seed: int = 0) -> GraphData:
        protocol = protocol or "platonov"
        if protocol != "platonov":
            raise ValueError(f"protocol {protocol!r} is not available for dataset {name!r}; it has: platonov")
        return platonov_data(name, root, seed, metric)

    load.__doc__ = (f"Load ``{name}`` (Platonov et al.'s npz) with fixed split ``seed % 10``; metric {metric}. "
                    f"Raises MissingDataError / DatasetError.")
    return describe_loader(load, "platonov", ("platonov",), metric)


for _name in NAMES:
    DATASETS.register(_name)(_loader(_name))
