"""``arxiv-year`` (Lim et al., "Large Scale Learning on Non-Homophilous Graphs", NeurIPS 2021 = LINKX).

The ogbn-arxiv graph and features (read by OGB's ``DglNodePropPredDataset``
from the OGB layout, :mod:`gkd_bench.datasets.ogbn`) with new labels: the
publication year bucketed into 5 classes at its quantiles (LINKX's
``even_quantile_labels``): with ``q_k = np.nanquantile(year, k / 5)``, class
0 is ``year < q_1``, class k is ``q_k <= year < q_{k+1}``, class 4 is
``year >= q_4`` (re-derived from LINKX's description and code comments).

Split protocol ``linkx`` (default, the only one): LINKX's 5 fixed random
50/25/25 splits from their repository, ``data/splits/arxiv-year-splits.npy``
(https://github.com/CUAI/Non-Homophily-Large-Scale/raw/master/data/splits/arxiv-year-splits.npy),
placed at ``<data root>/linkx/splits/arxiv-year-splits.npy``: a pickled
numpy object array of dicts with keys ``train``, ``valid``, ``test`` (node
ids). Split ``k = seed % 5``. It is read with ``allow_pickle=True`` because
that is the official format (load it only from that source).

Graph: undirected (``dgl.to_bidirected``, no self-loops), LINKX's default
(``to_undirected`` unless ``--directed``); ``directed=True`` keeps the
citation directions. Metric accuracy.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from gkd_bench.data import DatasetError, GraphData, MissingDataError
from gkd_bench.datasets._io import describe_loader, data_root, ensure_files, files_digest, validate
from gkd_bench.datasets.ogbn import ogb_files, ogb_raw
from gkd_bench.registry import DATASETS

SPLITS_REL = "linkx/splits/arxiv-year-splits.npy"
SPLITS_URL = "https://github.com/CUAI/Non-Homophily-Large-Scale/raw/master/data/splits/arxiv-year-splits.npy"
NUM_CLASSES = 5


def even_quantile_labels(vals: np.ndarray, nclasses: int = NUM_CLASSES) -> np.ndarray:
    """LINKX's quantile bucketing: int64 ``[N]`` classes ``0..nclasses-1`` (see module docstring).

    Values below the first quantile get class 0; NaN values get -1 (LINKX's
    default for values in no interval).
    """
    vals = np.asarray(vals, dtype=np.float64).reshape(-1)
    label = -np.ones(len(vals), dtype=np.int64)
    lower = -np.inf
    for k in range(nclasses - 1):
        upper = np.nanquantile(vals, (k + 1) / nclasses)
        label[(vals >= lower) & (vals < upper)] = k
        lower = upper
    label[vals >= lower] = nclasses - 1
    return label


def read_linkx_splits(path, num_nodes: int):
    """LINKX's fixed splits: list of ``{"train","val","test"}`` int64 tensors.

    Raises:
        DatasetError: naming ``path``: unreadable file, entries without
            train/valid/test, or node ids outside ``[0, num_nodes)``.
    """
    try:
        arr = np.load(path, allow_pickle=True)
        entries = list(arr)
        out = []
        for i, d in enumerate(entries):
            split = {}
            for key, role in (("train", "train"), ("valid", "val"), ("test", "test")):
                ids = torch.as_tensor(np.asarray(d[key])).long().reshape(-1)
                if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_nodes):
                    raise DatasetError(f"{path}: split {i} {key!r} has node ids outside [0, {num_nodes})")
                split[role] = ids
            out.append(split)
    except DatasetError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable content is a dataset error naming the file
        raise DatasetError(f"{path}: not LINKX's split file (an object array of dicts with train/valid/test) "
                           f"({type(e).__name__}: {e})") from e
    if not out:
        raise DatasetError(f"{path}: holds no split")
    return out


def load_arxiv_year(*, root=None, cache=None, protocol: Optional[str] = None, seed: int = 0,
                    directed: bool = False) -> GraphData:
    """Load ``arxiv-year`` (module docstring) with LINKX split ``seed % 5``.

    Raises:
        MissingDataError: the split file or an ogbn-arxiv file is absent (all named).
        DatasetError: unreadable files, or no ``node_year`` in the graph.
    """
    import dgl

    protocol = protocol or "linkx"
    if protocol != "linkx":
        raise ValueError(f"protocol {protocol!r} is not available for dataset 'arxiv-year'; it has: linkx")
    root = data_root(root)
    missing = []  # name every missing file (split file and ogbn-arxiv files) in one error
    try:
        (split_path,) = ensure_files("arxiv-year", root, [SPLITS_REL], {SPLITS_REL: SPLITS_URL},
                                     layout=SPLITS_REL, source=f"LINKX (Lim et al., NeurIPS 2021): {SPLITS_URL}")
    except MissingDataError as e:
        missing.append(str(e))
    try:
        ogb_files("ogbn-arxiv", root)
    except MissingDataError as e:
        missing.append(str(e))
    if missing:
        raise MissingDataError("\n".join(missing))
    g, _, _, _, version = ogb_raw("ogbn-arxiv", root, cache)
    if "year" not in g.ndata:
        raise DatasetError(f"{root / 'ogb/ogbn_arxiv/raw/node_year.csv.gz'}: no node years in the graph")
    y = torch.from_numpy(even_quantile_labels(g.ndata["year"].numpy()))
    splits_all = read_linkx_splits(split_path, g.num_nodes())
    k = seed % len(splits_all)
    src, dst = g.edges()
    graph = dgl.graph((src, dst), num_nodes=g.num_nodes())
    if not directed:
        graph = dgl.to_bidirected(dgl.remove_self_loop(graph))
    data = GraphData(name="arxiv-year", graph=graph, x=g.ndata["feat"].float(), y=y, splits=splits_all[k],
                     num_classes=NUM_CLASSES, metric="accuracy",
                     version=f"{version}-linkx-{files_digest([split_path])}" + ("-directed" if directed else ""),
                     protocol="linkx", split_index=k)
    return validate(data, f"{root / 'ogb/ogbn_arxiv'} + {split_path}")


DATASETS.register("arxiv-year")(describe_loader(load_arxiv_year, "linkx", ("linkx",), "accuracy"))
