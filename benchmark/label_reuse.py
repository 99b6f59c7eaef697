"""Training labels as model inputs: the label trick and label reuse.

Wang et al., "Bag of Tricks for Node Classification with Graph Neural Networks" (2021), sections 3.1
(label as input: a random part of the training nodes shows its one-hot label as extra input features,
the loss is computed on the other part) and 3.2 (label reuse: the model's softmax predictions are fed
back as the label inputs of every node without a shown label, and the model runs again). This is how
the G-CRD reference trains its ogbn-arxiv GAT teacher (chaitjo/efficient-gnns ``arxiv_dgl/gat.py``:
``--use-labels --n-label-iters=1``, mask rate 0.5), which the ``gcrd`` suite reproduces.

Enabled per model by train options (:class:`gkd_bench.fit.TrainConfig`: ``label_inputs``,
``label_mask_rate``, ``label_iters``); :func:`gkd_bench.runner.build_model` then wraps the model in
:class:`LabelReuse`, and the one training loop (:func:`gkd_bench.fit.fit`) redraws the shown labels
every epoch through :meth:`LabelReuse.resample_inputs`.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from gkd_bench.data import ModelOutput


class LabelReuse(nn.Module):
    """A model whose inputs are ``[x, label channels]``; the label channels of a node are its one-hot
    label when it is shown, else zeros, then (after each of ``iters`` passes) the model's own softmax.

    Training (after :meth:`resample_inputs` drew the shown nodes), as the reference: ``mask = rand <
    mask_rate`` over the training nodes; the masked ones (about ``mask_rate`` of them) show their
    labels, the others are the loss nodes (``Batch.train_idx``). Evaluation: every training node is
    shown. In both, ``iters`` times: the label channels of every node not shown are set to
    ``softmax(logits)`` of the previous pass (no gradient through it; the pass runs in the model's
    current mode, so training passes draw dropout and update batch-norm statistics), and the model
    runs again; the last pass is the output (its hidden layers are the model's representation, the
    reference's ``model.feat``).

    Shapes: ``x`` ``[N, F]`` -> ``ModelOutput`` of the wrapped model on ``[N, F + C]``.

    Bound (:meth:`bind_data`) to one single-graph dataset's labels and training nodes; a graph of
    another node count must carry the bound graph's ids in ``ndata[dgl.NID]`` (a k-hop subgraph, as
    latency measurement makes).

    Raises:
        ValueError: ``mask_rate`` outside (0, 1), negative ``iters``; :meth:`bind_data` on a
            multi-label, multi-graph or inductive dataset; a forward pass on a graph that is neither
            the bound one nor a subgraph of it.
        RuntimeError: a training-mode forward pass before :meth:`resample_inputs`.
    """

    def __init__(self, model: nn.Module, num_classes: int, mask_rate: float = 0.5, iters: int = 0):
        super().__init__()
        if not 0.0 < float(mask_rate) < 1.0:
            raise ValueError(f"train.label_mask_rate must be in (0, 1), got {mask_rate!r}")
        if int(iters) < 0:
            raise ValueError(f"train.label_iters must be >= 0, got {iters!r}")
        self.model = model
        self.num_classes = int(num_classes)
        self.mask_rate = float(mask_rate)
        self.iters = int(iters)
        self.register_buffer("onehot", None, persistent=False)   # [N, C] one-hot of the training nodes
        self.register_buffer("train_nodes", None, persistent=False)
        self._shown: Optional[torch.Tensor] = None                 # this epoch's shown training nodes

    @property
    def num_hops(self) -> int:
        """Receptive field: the wrapped model's (:func:`gkd_bench.timing.receptive_hops`, with its extra
        hop for source-degree scaling) plus its layer count once more per label-reuse pass: the final pass
        needs the previous pass's outputs ``L`` hops out, each exact from its own receptive field."""
        from gkd_bench.timing import receptive_hops

        base = receptive_hops(self.model)
        layers = getattr(self.model, "layers", None)
        per_pass = len(layers) if layers is not None else base
        return base + self.iters * per_pass

    def bind_data(self, data) -> "LabelReuse":
        """Bind to ``data``'s labels (int64 ``[N]``) and training nodes (``data.splits["train"]``)."""
        if data.multilabel or data.graphs or data.setting != "transductive":
            raise ValueError(f"dataset {data.name!r}: label inputs (train.label_inputs) need a single-graph, "
                             "single-label, transductive dataset")
        train = data.splits["train"]
        onehot = torch.zeros(data.num_nodes, self.num_classes, device=data.x.device)
        onehot[train, data.y[train]] = 1.0
        self.onehot, self.train_nodes = onehot, train.to(data.x.device)
        return self

    def resample_inputs(self, batch):
        """Draw this epoch's shown training nodes (global torch RNG, as the reference's ``torch.rand``)
        and return ``batch`` with ``train_idx`` = the other training nodes (the loss nodes)."""
        self._check_bound()
        if batch.nodes is not None or batch.graph_sizes is not None:
            raise ValueError("label inputs (train.label_inputs) train in full batch on a single graph")
        mask = torch.rand(batch.train_idx.shape) < self.mask_rate
        self._shown = batch.train_idx[mask.to(batch.train_idx.device)]
        return dataclasses.replace(batch, train_idx=batch.train_idx[~mask.to(batch.train_idx.device)])

    def _check_bound(self) -> None:
        if self.onehot is None:
            raise ValueError("label inputs: the model is not bound to a dataset (LabelReuse.bind_data)")

    def _rows(self, graph, n: int) -> Optional[torch.Tensor]:
        """``None`` when ``graph`` is the bound graph, else its nodes' ids in the bound graph.

        A graph of the bound node count is taken as the bound graph itself: a dataset graph may carry
        ``ndata[dgl.NID]`` from its own preprocessing (e.g. a largest connected component), which are
        not ids of the bound graph. Smaller graphs must carry them (``dgl.khop_in_subgraph`` does)."""
        if n == self.onehot.shape[0]:
            return None
        import dgl

        if dgl.NID in graph.ndata:
            return graph.ndata[dgl.NID].long()
        raise ValueError(f"label inputs are bound to a graph of {self.onehot.shape[0]} nodes; got a graph of "
                         f"{n} nodes without {dgl.NID!r} ids")

    def forward(self, graph, x: torch.Tensor) -> ModelOutput:
        self._check_bound()
        n = x.shape[0]
        if self.training and self._shown is None:
            raise RuntimeError("label inputs: call resample_inputs(batch) before a training forward pass")
        shown = torch.zeros(self.onehot.shape[0], dtype=torch.bool, device=x.device)
        shown[self._shown if self.training else self.train_nodes] = True
        rows = self._rows(graph, n)
        if rows is not None:
            shown = shown[rows]
        labels = (self.onehot if rows is None else self.onehot[rows]) * shown.unsqueeze(1)
        unseen = ~shown
        if self.iters:
            with torch.no_grad():  # the reference detaches these passes' outputs
                for _ in range(self.iters):
                    out = self.model(graph, torch.cat([x, labels], dim=1))
                    labels = labels.clone()
                    labels[unseen] = F.softmax(out.logits[unseen], dim=-1)
        return self.model(graph, torch.cat([x, labels], dim=1))
