"""The one training loop: teachers and students alike (DESIGN.md "Flow of one run").

Full-batch training with Adam, evaluation on the validation split every
``eval_every`` epochs, early stopping after ``patience`` epochs without a
strictly better validation score, and the best-validation weights restored.
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
from gkd_bench.methods._distiller import Batch, Distiller


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


def make_batch(view: GraphData, distiller: Distiller) -> Batch:
    """Full-batch :class:`Batch` of a training view; KD nodes per ``distiller.kd_nodes``."""
    train = view.splits["train"]
    kd = torch.arange(view.num_nodes) if getattr(distiller, "kd_nodes", "all") == "all" else train
    return Batch(view.graph, view.x, view.y, train, kd, view.multilabel)


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

    Args:
        model: the student (or teacher being trained).
        distiller: provides ``loss``/``train_step``; its own parameters are
            optimised together with the model's.
        view: the training view (``GraphData.training_view()``).
        teacher_out: frozen teacher outputs on ``view`` (``None`` for ``none``).
        cfg: optimisation settings.
        progress: optional callable ``(epoch, val)`` for progress display.

    Returns:
        FitResult; ``model`` holds the best-validation weights on return.

    Raises:
        FloatingPointError: when the loss becomes NaN or infinite.
    """
    params = list(model.parameters()) + [p for p in distiller.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch = make_batch(view, distiller)
    val_idx = view.splits["val"]
    best_val, best_epoch, best_state = -math.inf, -1, None
    history: List[Dict[str, float]] = []
    start = time.perf_counter()
    timed_out = False
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        terms = distiller.train_step(batch, model, opt, teacher_out)
        if not math.isfinite(terms["loss"]):
            raise FloatingPointError(f"loss became {terms['loss']} at epoch {epoch}")
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            out = predict(model, view.graph, view.x)
            val = score(view.metric, out.logits[val_idx], view.y[val_idx])
            terms["val"] = val
            if val > best_val:
                best_val, best_epoch = val, epoch
                best_state = copy.deepcopy(model.state_dict())
            if progress is not None:
                progress(epoch, val)
            if epoch - best_epoch >= cfg.patience:
                break
        history.append(terms)
        if cfg.max_time_s and time.perf_counter() - start > cfg.max_time_s:
            timed_out = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(best_epoch, best_val, epoch, time.perf_counter() - start, timed_out, history)
