"""The one training loop: teachers and students alike (DESIGN.md "Flow of one run").

Full-batch training with Adam, evaluation on the validation split every
``eval_every`` epochs, early stopping after ``patience`` epochs without a
better validation score, and the best-validation weights restored. "Better"
is a higher validation score, or an equal score with a lower validation loss
(ties in accuracy are frequent on small validation sets; GAT's reference code
also stops on accuracy or loss).
Methods differ only in their distiller's loss (and, for online methods, its
``train_step``).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from gkd_bench.data import GraphData, ModelOutput
from gkd_bench.metrics import score
from gkd_bench.methods._distiller import Batch, Distiller, task_loss, StudentEnsemble

# Multi-graph datasets (PPI): training graphs per batch (dgl.batch), as the
# reference code of GAT/LSP/Alignahead on PPI (batch size 2).
GRAPHS_PER_BATCH = 2


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one model's training.

    Attributes:
        epochs: maximum number of epochs (full passes).
        lr: Adam learning rate.
        weight_decay: Adam L2 weight decay.
        patience: stop after this many epochs without a better validation score.
        eval_every: evaluate every this many epochs.
        max_time_s: wall-clock budget in seconds (0 = none); exceeding it ends
            training early with the best weights so far and flags ``timed_out``.
    """

    epochs: int = 500
    lr: float = 0.01
    weight_decay: float = 5e-4
    patience: int = 100
    eval_every: int = 1
    max_time_s: float = 0.0

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> "TrainConfig":
        """Build from a dict; unknown keys raise ``ValueError`` naming them and the known ones."""
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown train option(s) {unknown}; known: {sorted(known)}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        return cls(**{k: (int(v) if types[k] == "int" else float(v)) for k, v in d.items()})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FitResult:
    best_epoch: int
    best_val: float
    epochs_run: int
    train_s: float
    timed_out: bool = False
    history: List[Dict[str, float]] = field(default_factory=list)
    member_best_epochs: List[int] = field(default_factory=list)   # online: per student
    member_best_vals: List[float] = field(default_factory=list)


def make_batch(view: GraphData, distiller: Distiller) -> Batch:
    """Full-batch :class:`Batch` of a training view; KD nodes per ``distiller.kd_nodes``."""
    train = view.splits["train"]
    kd = torch.arange(view.num_nodes) if getattr(distiller, "kd_nodes", "all") == "all" else train
    return Batch(view.graph, view.x, view.y, train, kd, view.multilabel)


def make_batches(view: GraphData, distiller: Distiller) -> List[Batch]:
    """One epoch's batches: the full batch, or for a multi-graph view (``view.graphs``) the
    training graphs in a fresh random order, ``GRAPHS_PER_BATCH`` per ``dgl.batch``, every
    node labelled (train and KD nodes = all nodes of the batch)."""
    if not view.graphs:
        return [make_batch(view, distiller)]
    import dgl

    train = view.graphs["train"]
    order = torch.randperm(len(train)).tolist()
    out = []
    for i in range(0, len(order), GRAPHS_PER_BATCH):
        parts = [train[j] for j in order[i:i + GRAPHS_PER_BATCH]]
        g = dgl.batch([p.graph for p in parts])
        idx = torch.arange(g.num_nodes())
        out.append(Batch(g, torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]), idx, idx,
                         view.multilabel))
    return out


def split_eval(model: torch.nn.Module, view: GraphData, split: str) -> tuple:
    """(score in %, task loss) of ``model`` on ``split`` of ``view``: the split's nodes of the
    graph, or for a multi-graph view every node of the split's graphs, pooled (micro-F1 over
    all of them)."""
    if view.graphs:
        parts = view.graphs[split]
        logits = torch.cat([predict(model, p.graph, p.x).logits for p in parts])
        y = torch.cat([p.y for p in parts])
        idx = torch.arange(len(y))
    else:
        idx = view.splits[split]
        logits, y = predict(model, view.graph, view.x).logits, view.y
    return (score(view.metric, logits[idx], y[idx]),
            float(task_loss(logits, y, idx, view.multilabel)))


def split_score(model: torch.nn.Module, view: GraphData, split: str) -> float:
    """Score (%) of ``model`` on ``split`` of ``view`` (see :func:`split_eval`)."""
    return split_eval(model, view, split)[0]


@torch.no_grad()
def predict(model: torch.nn.Module, graph, x: torch.Tensor) -> ModelOutput:
    """Eval-mode forward pass without gradients."""
    was = model.training
    model.eval()
    out = model(graph, x)
    model.train(was)
    return out


def fit(model: torch.nn.Module, distiller: Distiller, view: GraphData,
        teacher_out: Optional[ModelOutput], cfg: TrainConfig, progress=None) -> FitResult:
    """Train ``model`` on ``view`` with ``distiller``'s loss; keep the best-validation weights.

    Online distillers (``distiller.online``) get a :class:`StudentEnsemble`
    and make one optimiser per student; each student keeps its own
    best-validation weights, and training stops when no student improved for
    ``patience`` epochs.

    Args:
        model: the student (or teacher being trained), or the students.
        distiller: provides ``loss``/``train_epoch``; its own parameters are
            optimised together with the model's.
        view: the training view (``GraphData.training_view()``).
        teacher_out: frozen teacher outputs on ``view`` (``None`` for ``none``).
        cfg: optimisation settings.
        progress: optional callable ``(epoch, val)`` for progress display.

    Returns:
        FitResult; ``model`` holds the best-validation weights on return.

    Raises:
        FloatingPointError: when the loss becomes NaN or infinite.
        ValueError: teacher outputs with a multi-graph view (not supported yet).
    """
    if view.graphs and teacher_out is not None:
        raise ValueError(f"dataset {view.name!r}: distillation from teacher outputs on multi-graph "
                         "datasets is not supported yet")
    if getattr(distiller, "online", False):
        opt = distiller.make_optimizers(model, cfg)
    else:
        params = list(model.parameters()) + [p for p in distiller.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    members = list(model) if isinstance(model, StudentEnsemble) else [model]
    fixed = None if view.graphs else [make_batch(view, distiller)]
    best_val = [-math.inf] * len(members)
    best_loss = [math.inf] * len(members)
    best_epoch = [-1] * len(members)
    best_state = [None] * len(members)
    history: List[Dict[str, float]] = []
    start = time.perf_counter()
    timed_out = False
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        terms = distiller.train_epoch(fixed or make_batches(view, distiller), model, opt, teacher_out)
        if not math.isfinite(terms["loss"]):
            raise FloatingPointError(f"loss became {terms['loss']} at epoch {epoch}")
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            evals = [split_eval(m, view, "val") for m in members]
            vals = [v for v, _ in evals]
            for i, (m, (val, val_loss)) in enumerate(zip(members, evals)):
                if val > best_val[i] or (val == best_val[i] and val_loss < best_loss[i]):
                    best_val[i], best_loss[i], best_epoch[i] = val, val_loss, epoch
                    best_state[i] = copy.deepcopy(m.state_dict())
            terms["val"] = sum(vals) / len(vals)
            if progress is not None:
                progress(epoch, terms["val"])
            if epoch - max(best_epoch) >= cfg.patience:
                break
        history.append(terms)
        if cfg.max_time_s and time.perf_counter() - start > cfg.max_time_s:
            timed_out = True
            break
    for m, state in zip(members, best_state):
        if state is not None:
            m.load_state_dict(state)
    after_fit = getattr(distiller, "after_fit", None)
    if after_fit is not None:  # a later training stage from the restored best weights (sa_mlp_ind)
        after_fit(model, view, teacher_out, cfg)
    return FitResult(max(best_epoch), sum(best_val) / len(best_val), epoch, time.perf_counter() - start,
                     timed_out, history, best_epoch, best_val)
