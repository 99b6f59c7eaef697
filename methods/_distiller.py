"""Base class of every distiller and the supervised task loss (DESIGN.md concept 4)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import nn
from torch.nn import functional as F

from gkd_bench.data import ModelOutput
from gkd_bench.minibatch import forward_batch


@dataclass
class Batch:
    """What one training step sees (full batch: the whole training view; or a mini-batch).

    Attributes:
        graph: DGL graph the student runs on.
        x: features ``[N, F]``.
        y: labels ``[N]`` (int64) or ``[N, C]`` (float, multi-label).
        train_idx: int64 ids of labelled training nodes (task loss).
        kd_idx: int64 ids of the nodes the distillation terms apply to
            (GLNN: every node of the observed graph).
        multilabel: whether ``y`` is multi-label.
        nodes: mini-batch only (:mod:`gkd_bench.minibatch`): int64 ids (into the
            training view) of the batch's nodes ``[B]``; the student's outputs,
            ``y``, ``train_idx``/``kd_idx`` (positions in ``[0, B)``) and
            ``teacher`` refer to them. ``None`` for a full batch and for a
            multi-graph batch (whose nodes are those of ``graph``).
        teacher: mini-batch or multi-graph batch: the teacher outputs on the
            batch's nodes, in the batch's node order (logits ``[B, C]``, hidden
            ``[B, d_l]``), used in place of the full ``teacher_out``. Sliced from
            the cached outputs by :func:`gkd_bench.minibatch.minibatches` resp.
            :func:`gkd_bench.fit.make_batches`.
        graph_sizes: multi-graph batch only (``dgl.batch`` of several graphs):
            int64 node counts of its graphs ``[G]`` in batch order; graph g owns
            the g-th consecutive block of node positions. Distillers whose term
            compares sets of nodes compute it per graph
            (:meth:`gkd_bench.methods._projection.RepresentationDistiller.graph_segments`).
            ``None``: one graph (or a mini-batch of one graph).
        task_loss: the kind of supervised loss (:func:`task_loss`; ``TrainConfig.task_loss``).
    """

    graph: object
    x: torch.Tensor
    y: torch.Tensor
    train_idx: torch.Tensor
    kd_idx: torch.Tensor
    multilabel: bool = False
    nodes: Optional[torch.Tensor] = None
    teacher: Optional[ModelOutput] = None
    graph_sizes: Optional[torch.Tensor] = None
    task_loss: str = "ce"


#: kinds of supervised loss (:func:`task_loss`)
TASK_LOSSES = ("ce", "loge")
#: epsilon of the ``loge`` loss, ``1 - ln 2`` (arxiv_dgl/gat.py of the G-CRD reference)
LOGE_EPS = 1.0 - math.log(2.0)


def task_loss(logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, multilabel: bool,
              kind: str = "ce") -> torch.Tensor:
    """Cross-entropy on ``idx`` (mean over nodes); binary cross-entropy with logits
    (mean over nodes x labels) when ``multilabel``.

    ``kind="loge"``: the mean over nodes of ``log(eps + CE_i) - log(eps)``, ``eps = 1 - ln 2``
    (``CE_i`` the node's cross-entropy): the "LogE" loss of Wang et al., "Bag of Tricks for Node
    Classification with GNNs" (2021), section 4, used by the G-CRD reference's ogbn-arxiv GAT
    teacher (``arxiv_dgl/gat.py``, ``custom_loss_function``). Zero where CE is zero, its gradient
    ``1 / (eps + CE_i)`` times CE's: confident mistakes weigh less than under CE.

    Shapes: ``logits`` ``[N, C]``; ``y`` ``[N]`` or ``[N, C]``; ``idx`` ``[n]``.
    An empty ``idx`` (a mini-batch without labelled nodes) gives a zero loss
    that still depends on ``logits`` (no NaN).

    Raises:
        ValueError: an unknown ``kind``; ``loge`` on multi-label targets.
    """
    if kind not in TASK_LOSSES:
        raise ValueError(f"task loss must be one of {list(TASK_LOSSES)}, got {kind!r}")
    if len(idx) == 0:
        return logits.sum() * 0.0
    if multilabel:
        if kind != "ce":
            raise ValueError(f"task loss {kind!r} is for single-label data; multi-label uses binary cross-entropy")
        return F.binary_cross_entropy_with_logits(logits[idx], y[idx].float())
    if kind == "loge":
        ce = F.cross_entropy(logits[idx], y[idx], reduction="none")
        return (torch.log(LOGE_EPS + ce) - math.log(LOGE_EPS)).mean()
    return F.cross_entropy(logits[idx], y[idx])


class Distiller(nn.Module):
    """A KD method: its loss terms and any parameters of its own (projection heads).

    Subclasses implement :meth:`loss`; online methods (several students, no
    teacher) set ``online = True``, implement ``build_students(first, factory)
    -> StudentEnsemble`` and ``make_optimizers(students, cfg) -> list`` (one
    optimiser per student) and override :meth:`train_epoch`. Class attributes:
    ``needs_teacher`` (the runner trains/loads a teacher when true),
    ``online`` and ``kd_nodes`` (``"all"``: distillation terms on every node
    of the observed graph, as GLNN; ``"train"``: on labelled training nodes only),
    ``minibatch`` (its loss only reads per-node terms of the batch's nodes, so
    it can train in mini-batches, :mod:`gkd_bench.minibatch`), ``minibatch_sets`` (its
    loss also has terms over a set of nodes -- AT's normalisation, GSP's kernel matrix,
    G-CRD's negatives -- that are then computed over each mini-batch's nodes, as the G-CRD
    reference does for SIGN; only with an explicit ``batching: minibatch``), ``multigraph``
    (it trains on batches of several graphs, :func:`gkd_bench.fit.make_batches`:
    its terms read ``batch.teacher`` and never pair nodes of different graphs;
    :func:`gkd_bench.fit.fit` refuses a multi-graph dataset otherwise).
    """

    needs_teacher: bool = True
    online: bool = False
    minibatch: bool = False
    minibatch_sets: bool = False
    multigraph: bool = True

    def __init__(self, kd_nodes: str = "all"):
        super().__init__()
        if kd_nodes not in ("all", "train"):
            raise ValueError(f"kd_nodes must be 'all' or 'train', got {kd_nodes!r}")
        self.kd_nodes = kd_nodes

    def setup(self, data, student: nn.Module, teacher_out: Optional[ModelOutput]) -> None:
        """Build the distiller's own modules once the student and teacher outputs exist."""

    def loss(self, batch: Batch, student_out: ModelOutput,
             teacher_out: Optional[ModelOutput]) -> Dict[str, torch.Tensor]:
        """Return named loss terms; ``"loss"`` is what is minimised."""
        raise NotImplementedError

    def train_step(self, batch: Batch, student: nn.Module, optimizer: torch.optim.Optimizer,
                   teacher_out: Optional[ModelOutput]) -> Dict[str, float]:
        """One optimisation step of the student (and the distiller's own parameters).

        A mini-batch's ``batch.teacher`` (teacher outputs on its nodes) replaces ``teacher_out``.
        """
        student.train()
        self.train()
        optimizer.zero_grad(set_to_none=True)
        out = forward_batch(student, batch)
        terms = self.loss(batch, out, batch.teacher if batch.teacher is not None else teacher_out)
        terms["loss"].backward()
        optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    def train_epoch(self, batches, student: nn.Module, optimizer, teacher_out: Optional[ModelOutput]
                    ) -> Dict[str, float]:
        """One epoch: :meth:`train_step` on each batch in turn; returns each term's mean over batches.

        A single-graph dataset in full-batch mode is one batch, so this is one
        step; ``batches`` may be a generator (mini-batches are produced lazily).
        """
        acc: Dict[str, list] = {}
        for batch in batches:
            for k, v in self.train_step(batch, student, optimizer, teacher_out).items():
                acc.setdefault(k, []).append(v)
        return {k: sum(v) / len(v) for k, v in acc.items()}


class StudentEnsemble(nn.ModuleList):
    """The K peer students of an online distiller, as one module.

    Indexing/iterating gives the students; ``forward(graph, x)`` returns the
    ensemble: ``ModelOutput(mean_k logits_k, ())``, shape ``[N, C]`` (what the
    runner scores as ``test_ensemble``).
    """

    def forward(self, graph, x) -> ModelOutput:
        logits = torch.stack([m(graph, x).logits for m in self]).mean(0)
        return ModelOutput(logits, ())
