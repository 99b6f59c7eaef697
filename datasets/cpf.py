"""The CPF / GLNN data pipeline for graphs stored in the gnn-benchmark CSR ``.npz`` format.

Protocol ``cpf`` (Yang et al., "Extract the Knowledge of Graph Neural Networks
and Go Beyond it", WWW 2021 = CPF; Zhang et al., "Graph-less Neural
Networks", ICLR 2022 = GLNN): GLNN's ``load_cpf_data``
(snap-research/graphless-neural-networks, ``dataloader.py`` and
``data_preprocess.py``, adapted from BUPT-GAMMA/CPF and Shchur et al.'s
gnn-benchmark) does, in this order:

1. read the CSR arrays ``adj_data/adj_indices/adj_indptr/adj_shape``,
   ``attr_*`` (or a dense ``attr_matrix``) and ``labels``;
2. ``standardize``: set every edge weight to 1, symmetrise (A + A^T, then 1),
   remove self-loops, keep the largest connected component (nodes kept in
   their original order);
3. one-hot the labels with scikit-learn's ``LabelBinarizer`` (class index =
   rank of the label value among the values present in the component);
4. draw the split with ``np.random.RandomState(seed)``: for each class in
   order, ``choice(sorted ids of that class, 20, replace=False)`` for train;
   then the same with 30 per class for validation, train ids excluded; the
   rest (sorted) is test (Shchur et al.'s ``get_train_val_test_split``);
5. keep the raw features (binary bag of words on Cora/CiteSeer/Amazon; no row
   normalisation);
6. build the DGL graph from the sparsity pattern of ``A + I`` (GLNN builds it
   from ``normalize_adj(A) = rownorm(A + I)`` and uses only its structure), so
   every node has a self-loop and both directions of every edge.

Re-derived details (not copied): the split is reproduced from the description
above; :func:`cpf_split` is checked against an independent re-implementation
in the tests.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import scipy.sparse as sp
import torch

from gkd_bench.data import DatasetError, GraphData
from gkd_bench.datasets._io import check_shape, data_root, ensure_files, files_digest, read_npz, validate

CPF_URL = "https://github.com/BUPT-GAMMA/CPF/raw/389c01aaf238689ee7b1e5aba127842341e123b6/data/npz/{file}"
CPF_SOURCE = ("CPF (Yang et al., WWW 2021) npz files as read by GLNN (Zhang et al., ICLR 2022), "
              "github.com/BUPT-GAMMA/CPF/tree/389c01a/data/npz")


def read_sparse_graph_npz(path: Path) -> Tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Read a gnn-benchmark / CPF ``.npz`` (Shchur et al., 2018) into (A, X, y).

    Returns:
        ``A``: ``scipy.sparse.csr_matrix`` ``[N, N]`` as stored (possibly
        directed, weighted, with self-loops); ``X``: float32 ``[N, F]`` dense
        features; ``y``: int64 ``[N]`` labels as stored.

    Raises:
        DatasetError: naming ``path``: unreadable archive, missing arrays,
            inconsistent CSR arrays or shapes, labels that are not one per node.
    """
    z = read_npz(path, ["adj_data", "adj_indices", "adj_indptr", "adj_shape", "labels"],
                 optional=["attr_data", "attr_indices", "attr_indptr", "attr_shape", "attr_matrix"])
    shape = tuple(int(s) for s in check_shape(z["adj_shape"], (2,), "adj_shape", path))
    if shape[0] != shape[1]:
        raise DatasetError(f"{path}: adjacency is {shape[0]} x {shape[1]}, expected square")
    n = shape[0]
    adj = _csr(z, "adj", shape, path)
    if "attr_data" in z:
        if "attr_shape" not in z or "attr_indices" not in z or "attr_indptr" not in z:
            raise DatasetError(f"{path}: attr_data without attr_indices/attr_indptr/attr_shape")
        ashape = tuple(int(s) for s in check_shape(z["attr_shape"], (2,), "attr_shape", path))
        x = _csr(z, "attr", ashape, path).astype(np.float32).toarray()
    elif "attr_matrix" in z:
        x = np.asarray(z["attr_matrix"], dtype=np.float32)
    else:
        raise DatasetError(f"{path}: no node features (attr_data or attr_matrix)")
    check_shape(x, (n, None), "attribute matrix", path)
    y = check_shape(np.asarray(z["labels"]), (n,), "labels", path)
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{path}: labels have dtype {y.dtype}, expected integers")
    return adj, x, y.astype(np.int64)


def _csr(z: Dict[str, np.ndarray], prefix: str, shape, path) -> sp.csr_matrix:
    data, indices, indptr = z[f"{prefix}_data"], z[f"{prefix}_indices"], z[f"{prefix}_indptr"]
    if indptr.ndim != 1 or len(indptr) != shape[0] + 1 or len(data) != len(indices) or \
            (len(indptr) and int(indptr[-1]) != len(indices)):
        raise DatasetError(f"{path}: {prefix}_indptr/{prefix}_indices/{prefix}_data are inconsistent with "
                           f"{prefix}_shape {tuple(shape)} (indptr length {len(indptr)}, "
                           f"{len(indices)} indices, {len(data)} values)")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= shape[1]):
        raise DatasetError(f"{path}: {prefix}_indices outside [0, {shape[1]})")
    if not np.isfinite(data).all():
        raise DatasetError(f"{path}: {prefix}_data contains NaN or inf")
    try:
        return sp.csr_matrix((data, indices, indptr), shape=shape)
    except ValueError as e:
        raise DatasetError(f"{path}: invalid {prefix} CSR arrays ({e})") from e


def standardize(adj: sp.spmatrix) -> Tuple[sp.csr_matrix, np.ndarray]:
    """Unweighted, symmetric, loop-free adjacency restricted to its largest connected component.

    Returns:
        ``(A_lcc, keep)``: ``A_lcc`` csr ``[n, n]`` with 0/1 entries, ``keep``
        the sorted int64 ids (into the input) of the ``n`` nodes kept. Ties
        between equally large components go to the lowest component label
        (as ``np.argsort`` on the component sizes in GLNN/CPF).
    """
    a = sp.csr_matrix(adj, dtype=np.float32, copy=True)
    a.data[:] = 1.0
    a = (a + a.T).tocsr()
    a.data[:] = 1.0
    a.setdiag(0)
    a.eliminate_zeros()
    _, comp = sp.csgraph.connected_components(a, directed=False)
    sizes = np.bincount(comp)
    big = np.argsort(sizes, kind="stable")[::-1][0]
    keep = np.flatnonzero(comp == big).astype(np.int64)
    return a[keep][:, keep].tocsr(), keep


def cpf_split(labels: np.ndarray, seed: int, train_per_class: int = 20,
              val_per_class: int = 30) -> Dict[str, torch.Tensor]:
    """GLNN/CPF split: ``train_per_class`` train and ``val_per_class`` validation nodes per class.

    Args:
        labels: int ``[N]`` class ids ``0..C-1``.
        seed: seeds ``np.random.RandomState`` (the run seed in GLNN).

    Returns:
        ``{"train", "val", "test"}`` -> int64 node ids (train/val in GLNN's
        draw order: class by class; test sorted).

    Raises:
        DatasetError: if a class has fewer than ``train_per_class + val_per_class`` nodes.
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    classes = np.unique(labels)
    members = {c: np.flatnonzero(labels == c) for c in classes}
    for c, ids in members.items():
        if len(ids) < train_per_class + val_per_class:
            raise DatasetError(f"cpf split: class {int(c)} has {len(ids)} nodes, fewer than "
                               f"{train_per_class} train + {val_per_class} val")
    train = np.concatenate([rng.choice(members[c], train_per_class, replace=False) for c in classes])
    taken = np.zeros(len(labels), dtype=bool)
    taken[train] = True
    val = np.concatenate([rng.choice(members[c][~taken[members[c]]], val_per_class, replace=False)
                          for c in classes])
    taken[val] = True
    test = np.flatnonzero(~taken)
    return {k: torch.from_numpy(v.astype(np.int64)) for k, v in (("train", train), ("val", val), ("test", test))}


def cpf_graph(adj: sp.csr_matrix):
    """DGL graph with the sparsity pattern of ``adj + I`` (GLNN's ``normalize_adj`` structure)."""
    import dgl

    a = (adj + sp.eye(adj.shape[0], dtype=adj.dtype, format="csr")).tocoo()
    return dgl.graph((torch.from_numpy(a.row.astype(np.int64)), torch.from_numpy(a.col.astype(np.int64))),
                     num_nodes=adj.shape[0])


def cpf_from_npz(name: str, path: Path, seed: int, version_prefix: str = "cpf",
                 train_per_class: int = 20, val_per_class: int = 30) -> GraphData:
    """Run GLNN's CPF pipeline (module docstring) on one gnn-benchmark ``.npz`` file.

    Args:
        name: dataset name for the GraphData and messages.
        path: the ``.npz`` file.
        seed: split seed (``np.random.RandomState(seed)``), recorded as ``split_index``.
        train_per_class, val_per_class: GLNN's ``labelrate_train`` / ``labelrate_val``.

    Returns:
        GraphData (protocol ``cpf``, metric accuracy); ``extra["node_ids"]``
        maps its nodes to rows of the file.

    Raises:
        DatasetError: unreadable or inconsistent file (named), or a class too
            small for the per-class counts.
    """
    adj, x, y = read_sparse_graph_npz(path)
    adj, keep = standardize(adj)
    if len(keep) < len(y):  # (coauthor-cs is connected: no 0.5 GB copy of its features)
        x, y = x[keep], y[keep]
    _, y = np.unique(y, return_inverse=True)  # LabelBinarizer column order = sorted label values
    try:
        splits = cpf_split(y, seed, train_per_class, val_per_class)
    except DatasetError as e:
        raise DatasetError(f"{path}: {e}") from None
    data = GraphData(name=name, graph=cpf_graph(adj), x=torch.from_numpy(np.ascontiguousarray(x)),
                     y=torch.from_numpy(y.astype(np.int64)), splits=splits, num_classes=int(y.max()) + 1,
                     metric="accuracy", version=f"{version_prefix}-{files_digest([path])}",
                     protocol="cpf", split_index=int(seed), extra={"node_ids": torch.from_numpy(keep)})
    return validate(data, str(path))


def load_cpf(name: str, *, root=None, cache=None, seed: int = 0, train_per_class: int = 20,
             val_per_class: int = 30) -> GraphData:
    """Cora or CiteSeer from ``<root>/cpf/<name>.npz`` under GLNN's CPF protocol.

    Raises:
        MissingDataError: the file is absent and cannot be downloaded (names
            the file, the layout and the source).
        DatasetError: see :func:`cpf_from_npz`.
    """
    root = data_root(root)
    rel = f"cpf/{name}.npz"
    (path,) = ensure_files(name, root, [rel], {rel: CPF_URL.format(file=f"{name}.npz")},
                           layout="cpf/<name>.npz (gnn-benchmark CSR arrays adj_*, attr_*, labels)",
                           source=CPF_SOURCE)
    return cpf_from_npz(name, path, seed, "cpf", train_per_class, val_per_class)
