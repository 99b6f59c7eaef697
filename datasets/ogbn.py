"""OGB node property prediction: ``ogbn-arxiv`` and ``ogbn-products`` (Hu et al., NeurIPS 2020).

Read with ogb's own ``DglNodePropPredDataset`` from the official OGB layout
under the data root::

    <data root>/ogb/ogbn_arxiv/RELEASE_v1.txt
    <data root>/ogb/ogbn_arxiv/raw/{edge,node-feat,node-label,num-node-list,num-edge-list,node_year}.csv.gz
    <data root>/ogb/ogbn_arxiv/split/time/{train,valid,test}.csv.gz
    <data root>/ogb/ogbn_products/...  (no node_year; split/sales_ranking/)

i.e. the folders OGB itself creates when it downloads
``http://snap.stanford.edu/ogb/data/nodeproppred/{arxiv,products}.zip``.
Every needed file is checked *before* OGB is called: OGB would otherwise
start a download (asking an interactive question above 1 GB, or when the
release file is missing, which fails without stdin). Links to the files
are staged in the cache, where OGB writes its processed graph
(``processed/dgl_data_processed``), so the data root stays read-only.

Protocol ``ogb`` (default, the only one): the official split; metric
accuracy, which equals OGB's ``Evaluator(name).eval`` ``acc`` (checked in the
tests). Graph processing as GLNN's ``load_ogb_data``: ogbn-arxiv (a directed
citation graph) is made undirected (``dgl.to_bidirected``) with one
self-loop per node; ogbn-products (stored with both directions) is used as
read.

Option ``self_loops`` (suite ``options: {self_loops: ...}``): ``null`` (default) keeps the graph
processing above; ``false`` removes every self-loop (the G-CRD reference's PyG students read
ogbn-arxiv as ``adj_t.to_symmetric()``, which has none: it matters to GraphSAGE, whose neighbour mean
then leaves the node out; GCN and GAT add their own self-loops either way); ``true`` gives one
self-loop per node.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional

import torch

from gkd_bench.data import DatasetError, GraphData
from gkd_bench.datasets._io import (describe_loader, cache_root, data_root, ensure_files, files_digest, quiet, stage_links,
                                    stage_lock, validate)
from gkd_bench.registry import DATASETS

SPLIT_TYPE = {"ogbn-arxiv": "time", "ogbn-products": "sales_ranking"}
RAW = ("edge.csv.gz", "node-feat.csv.gz", "node-label.csv.gz", "num-node-list.csv.gz", "num-edge-list.csv.gz")
EXTRA_RAW = {"ogbn-arxiv": ("node_year.csv.gz",), "ogbn-products": ()}
ZIP = {"ogbn-arxiv": "arxiv", "ogbn-products": "products"}
SOURCE = "OGB (Hu et al., 2020): http://snap.stanford.edu/ogb/data/nodeproppred/{zip}.zip, unzipped as " \
         "<data root>/ogb/{folder}/ (the folder OGB creates)"


def ogb_files(name: str, root=None):
    """Relative and absolute paths of every file ``name`` needs; MissingDataError names the missing ones."""
    folder = name.replace("-", "_")
    rel = [f"ogb/{folder}/RELEASE_v1.txt"]
    rel += [f"ogb/{folder}/raw/{f}" for f in RAW + EXTRA_RAW[name]]
    rel += [f"ogb/{folder}/split/{SPLIT_TYPE[name]}/{s}.csv.gz" for s in ("train", "valid", "test")]
    root = data_root(root)
    paths = ensure_files(name, root, rel, None,
                         layout=f"ogb/{folder}/{{RELEASE_v1.txt, raw/*.csv.gz, split/{SPLIT_TYPE[name]}/"
                                f"{{train,valid,test}}.csv.gz}}",
                         source=SOURCE.format(zip=ZIP[name], folder=folder))
    return rel, paths


def ogb_raw(name: str, root=None, cache=None):
    """Load ``name`` through ``DglNodePropPredDataset`` reading staged links to the data root.

    Returns:
        ``(graph, labels [N] int64, split dict train/valid/test, num_classes, version)``;
        ``graph`` as OGB builds it (``ndata["feat"]``, and ``ndata["year"]``
        ``[N, 1]`` for ogbn-arxiv).

    Raises:
        MissingDataError: before OGB is called, naming every missing file.
        DatasetError: OGB cannot parse the files (named).
    """
    rel, paths = ogb_files(name, root)
    version = "ogb-" + files_digest(paths)
    stage = cache_root(cache) / "ogb" / version
    by_dir = {}
    for r, p in zip(rel, paths):
        sub = Path(r).parent.relative_to("ogb")
        by_dir.setdefault(sub, {})[Path(r).name] = p
    os.environ.setdefault("OUTDATED_IGNORE", "1")  # `import ogb` would query PyPI for a newer version
    with stage_lock(stage):  # OGB writes its processed files into the stage: one worker at a time
        for sub, links in by_dir.items():
            stage_links(links, stage / sub)
        try:
            from ogb.nodeproppred import DglNodePropPredDataset

            with warnings.catch_warnings(), quiet():
                warnings.simplefilter("ignore")
                ds = DglNodePropPredDataset(name, root=str(stage))
                split = ds.get_idx_split()
            graph, labels = ds[0]
        except (Exception, SystemExit) as e:  # noqa: BLE001 - OGB calls exit() when it declines a download
            where = data_root(root) / "ogb" / name.replace("-", "_")
            raise DatasetError(f"dataset {name!r}: OGB cannot read the files in {where} "
                               f"({type(e).__name__}: {e}); re-download them") from e
    labels = torch.as_tensor(labels).reshape(-1).long()
    return graph, labels, split, int(ds.num_classes), version


def _loader(name: str):
    def load(*, root=None, cache=None, protocol: Optional[str] = None, seed: int = 0,
             self_loops: Optional[bool] = None) -> GraphData:
        import dgl

        protocol = protocol or "ogb"
        if protocol != "ogb":
            raise ValueError(f"protocol {protocol!r} is not available for dataset {name!r}; it has: ogb")
        if self_loops not in (None, True, False):
            raise ValueError(f"dataset {name!r}: option self_loops must be true, false or null; got {self_loops!r}")
        g, y, split, num_classes, version = ogb_raw(name, root, cache)
        x = g.ndata["feat"].float()
        src, dst = g.edges()
        graph = dgl.graph((src, dst), num_nodes=g.num_nodes())
        if name == "ogbn-arxiv":  # GLNN: undirected, then remove_self_loop().add_self_loop()
            graph = dgl.to_bidirected(dgl.remove_self_loop(graph))
            if self_loops is None:
                self_loops = True
        if self_loops is not None:
            graph = dgl.remove_self_loop(graph)
            if self_loops:
                graph = dgl.add_self_loop(graph)
        splits = {"train": split["train"].long(), "val": split["valid"].long(), "test": split["test"].long()}
        data = GraphData(name=name, graph=graph, x=x, y=y, splits=splits, num_classes=num_classes,
                         metric="accuracy", version=version, protocol="ogb", split_index=0)
        return validate(data, str(data_root(root) / "ogb" / name.replace("-", "_")))

    load.__doc__ = (f"Load ``{name}`` with OGB's ``DglNodePropPredDataset`` and its official split "
                    f"(see module docstring). Raises MissingDataError before OGB runs / DatasetError.")
    return describe_loader(load, "ogb", ("ogb",), "accuracy")


for _name in SPLIT_TYPE:
    DATASETS.register(_name)(_loader(_name))
