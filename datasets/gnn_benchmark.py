"""Amazon co-purchase and Coauthor graphs of Shchur et al., "Pitfalls of GNN Evaluation" (2018).

``amazon-computers``, ``amazon-photo``, ``coauthor-cs``, ``coauthor-physics``
read ``<data root>/gnn-benchmark/<file>.npz`` in the gnn-benchmark CSR format
(files ``amazon_electronics_computers``, ``amazon_electronics_photo``,
``ms_academic_cs``, ``ms_academic_phy``; official copies in
github.com/shchur/gnn-benchmark/tree/master/data/npz).

Protocol ``cpf`` (the only one, and the default): GLNN's CPF pipeline
(:mod:`gkd_bench.datasets.cpf`): largest connected component, raw features,
self-loops added, 20 train / 30 val per class drawn with
``np.random.RandomState(seed)``, the rest test. GLNN uses it for
"a-computer" and "a-photo".

Why not DGL's ``AmazonCoBuyComputerDataset`` / ``CoauthorCSDataset``: DGL
1.1.3 reads the same arrays but reorders the nodes (``reorder_graph`` with
RCMK, ids not stored), keeps self-loops and every component, and expects
its own zip layout. The node order decides which nodes
``RandomState(seed)`` picks, so GLNN's splits cannot be reproduced from
DGL's graph; the file is parsed with scipy instead (the same arrays DGL's
``_load_npz`` reads).
"""
from __future__ import annotations

from typing import Optional

from gkd_bench.data import GraphData
from gkd_bench.datasets._io import describe_loader, data_root, ensure_files
from gkd_bench.datasets.cpf import cpf_from_npz
from gkd_bench.registry import DATASETS

URL = "https://github.com/shchur/gnn-benchmark/raw/master/data/npz/{file}.npz"
SOURCE = "gnn-benchmark (Shchur et al., 2018), github.com/shchur/gnn-benchmark/tree/master/data/npz"
FILES = {"amazon-computers": "amazon_electronics_computers", "amazon-photo": "amazon_electronics_photo",
         "coauthor-cs": "ms_academic_cs", "coauthor-physics": "ms_academic_phy"}


def gnn_benchmark_path(name: str, root=None):
    """Absolute path of ``name``'s npz under the data root (downloaded when missing and allowed).

    Raises:
        MissingDataError: the file is absent (names it, the layout and the source).
    """
    root = data_root(root)
    rel = f"gnn-benchmark/{FILES[name]}.npz"
    (path,) = ensure_files(name, root, [rel], {rel: URL.format(file=FILES[name])},
                           layout="gnn-benchmark/<file>.npz (CSR arrays adj_*, attr_*, labels)", source=SOURCE)
    return path


def _loader(name: str):
    def load(*, root=None, cache=None, protocol: Optional[str] = None, seed: int = 0,
             train_per_class: int = 20, val_per_class: int = 30) -> GraphData:
        protocol = protocol or "cpf"
        if protocol != "cpf":
            raise ValueError(f"protocol {protocol!r} is not available for dataset {name!r}; it has: cpf")
        return cpf_from_npz(name, gnn_benchmark_path(name, root), seed, "gnn-benchmark",
                            train_per_class, val_per_class)

    load.__doc__ = (f"Load ``{name}`` from ``gnn-benchmark/{FILES[name]}.npz`` under GLNN's ``cpf`` protocol "
                    f"(largest connected component; ``train_per_class``/``val_per_class`` nodes per class "
                    f"drawn with ``RandomState(seed)``). Raises MissingDataError / DatasetError.")
    return describe_loader(load, "cpf", ("cpf",), "accuracy")


for _name in FILES:
    DATASETS.register(_name)(_loader(_name))
