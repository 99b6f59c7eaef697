"""GraphData (what every dataset loader returns) and the training/evaluation views of it.

DESIGN.md concept 2. A single-graph dataset holds one DGL graph with node
features ``x`` (float32, ``[N, F]``), labels ``y`` (int64 ``[N]``, or float32
``[N, C]`` when ``multilabel``), and split index tensors (int64, node ids of the
full graph). In the inductive setting ``observed`` lists the node ids that
training may see; every edge touching a held-out node is absent from the
observed graph (see :func:`gkd_bench.datasets.settings.make_inductive`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch


class DatasetError(RuntimeError):
    """A dataset cannot be loaded: corrupted files or bad values; the message names the file and problem."""


class MissingDataError(DatasetError):
    """The dataset's files are not under the data root and could not be downloaded.

    The message names every missing file, the expected layout and the official
    source. A sweep records such runs as ``skipped`` and goes on.
    """


@dataclass
class GraphData:
    """A loaded dataset in one split and setting.

    Attributes:
        name: registry key, e.g. ``"cora"``.
        graph: ``dgl.DGLGraph`` with N nodes (directed edge list, both
            directions present for undirected data; self-loops as the protocol
            dictates).
        x: node features, float32 ``[N, F]``.
        y: labels, int64 ``[N]`` (multi-class) or float32 ``[N, C]`` (multi-label).
        splits: ``{"train","val","test"[, "test_tran", "test_ind"]}`` -> int64
            node-id tensors into the full graph.
        num_classes: C.
        multilabel: whether ``y`` is ``[N, C]`` of 0/1.
        metric: ``"accuracy"``, ``"micro_f1"`` or ``"roc_auc"``.
        version: dataset version string (files + processing), part of cache keys.
        protocol: split protocol name (``planetoid``, ``geom-gcn``, ``cpf`` ...).
        split_index: which of the protocol's splits (fixed-split protocols) or
            the seed it was drawn with (resampled protocols).
        setting: ``"transductive"`` or ``"inductive"``.
        observed: for the inductive setting, int64 node ids visible in training.
        graphs: for multi-graph datasets (PPI): ``{"train": [GraphData...], ...}``;
            then ``graph``/``x``/``y`` describe the first training graph.
    """

    name: str
    graph: object
    x: torch.Tensor
    y: torch.Tensor
    splits: Dict[str, torch.Tensor]
    num_classes: int
    multilabel: bool = False
    metric: str = "accuracy"
    version: str = "1"
    protocol: str = ""
    split_index: int = 0
    setting: str = "transductive"
    observed: Optional[torch.Tensor] = None
    graphs: Optional[Dict[str, List["GraphData"]]] = None
    extra: Dict[str, object] = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        """``N``: rows of ``x``."""
        return int(self.x.shape[0])

    @property
    def num_features(self) -> int:
        """``F``: columns of ``x``."""
        return int(self.x.shape[1])

    def replace(self, **kw) -> "GraphData":
        """A shallow copy with the given fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **kw)

    def training_view(self) -> "GraphData":
        """The part of the data training may see.

        Transductive: ``self``. Inductive: the node-induced subgraph on
        ``observed`` with features, labels and the splits ``train``, ``val``,
        ``test_tran`` re-indexed to the subgraph; ``extra["parent_ids"]`` maps
        subgraph ids back to full-graph ids. Held-out nodes and their edges are
        not in it.
        """
        if self.observed is None:
            return self
        import dgl

        obs = self.observed
        sub = dgl.node_subgraph(self.graph, obs, store_ids=False)
        local = torch.full((self.num_nodes,), -1, dtype=torch.long)
        local[obs] = torch.arange(len(obs))
        splits = {}
        for key in ("train", "val", "test_tran"):
            ids = local[self.splits[key]]
            if (ids < 0).any():
                raise AssertionError(f"split {key!r} contains held-out nodes")
            splits[key] = ids
        return self.replace(graph=sub, x=self.x[obs], y=self.y[obs], splits=splits,
                            observed=None, extra={**self.extra, "parent_ids": obs})


@dataclass
class ModelOutput:
    """What every model's ``forward(graph, x)`` returns (DESIGN.md concept 3).

    Attributes:
        logits: ``[N, C]`` pre-softmax scores.
        hidden: per-layer node representations of the hidden layers, in order,
            each ``[N, d_l]`` (post-activation, before dropout); what FitNet,
            AT, LSP, GSP, G-CRD and Alignahead read.
    """

    logits: torch.Tensor
    hidden: tuple = ()

    def detach(self) -> "ModelOutput":
        """The same logits and hidden layers cut from the autograd graph (no copy)."""
        return ModelOutput(self.logits.detach(), tuple(h.detach() for h in self.hidden))
