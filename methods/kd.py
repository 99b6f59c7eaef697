"""``kd``: Hinton et al. (2015) knowledge distillation; GLNN (Zhang et al., ICLR 2022)
when the student is an MLP."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from gkd_bench.methods._distiller import Distiller, task_loss
from gkd_bench.registry import DISTILLERS

KL_REDUCTIONS = ("batchmean", "elementwise")


def kd_loss(z_s: torch.Tensor, z_t: torch.Tensor, T: float = 1.0, reduction: str = "batchmean",
            multilabel: bool = False) -> torch.Tensor:
    """Soft-label distillation term ``T^2 * KL(softmax(z_t/T) || softmax(z_s/T))``.

    Args:
        z_s: student logits ``[n, C]``.
        z_t: teacher logits ``[n, C]`` (no gradient flows into them).
        T: temperature.
        reduction: ``batchmean`` (sum / n: per-node KL, Hinton/GLNN) or
            ``elementwise`` (sum / (n*C): ``reduction='mean'`` of G-CRD's code).
        multilabel: use ``BCE(z_s/T, sigmoid(z_t/T))`` (mean over n*C) instead,
            as G-CRD does on PPI; the ``T^2`` factor is kept.

    Returns:
        scalar tensor.

    Raises:
        ValueError: unknown ``reduction`` or mismatched shapes.
    """
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"kl_reduction must be one of {KL_REDUCTIONS}, got {reduction!r}")
    if z_s.shape != z_t.shape:
        raise ValueError(f"student logits {tuple(z_s.shape)} and teacher logits {tuple(z_t.shape)} differ")
    z_t = z_t.detach()
    if multilabel:
        return T * T * F.binary_cross_entropy_with_logits(z_s / T, torch.sigmoid(z_t / T))
    kl = F.kl_div(F.log_softmax(z_s / T, dim=-1), F.log_softmax(z_t / T, dim=-1),
                  reduction="sum", log_target=True)
    denom = z_s.shape[0] if reduction == "batchmean" else z_s.numel()
    return T * T * kl / max(denom, 1)


def check_kd_hparams(lam: float, T: float, kl_reduction: str) -> None:
    """Validate KD hyperparameters.

    Raises:
        ValueError: ``lam`` outside [0, 1], ``T <= 0`` or unknown ``kl_reduction``.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    if T <= 0:
        raise ValueError(f"T must be positive, got {T}")
    if kl_reduction not in KL_REDUCTIONS:
        raise ValueError(f"kl_reduction must be one of {KL_REDUCTIONS}, got {kl_reduction!r}")


@DISTILLERS.register("kd")
class KD(Distiller):
    """``L = (1-lam) * CE(y, z_s)[train] + lam * T^2 * KL(p_t || p_s)[kd nodes]`` (METHODS.md).

    Args:
        lam: weight of the distillation term in [0, 1] (GLNN's lambda; G-CRD's alpha).
        T: temperature (GLNN 1; G-CRD 4).
        kl_reduction: ``batchmean`` | ``elementwise`` (see :func:`kd_loss`).
        kd_nodes: ``all`` (GLNN: every node of the observed graph) | ``train``.

    Trains in mini-batches too (:mod:`gkd_bench.minibatch`): the terms are means over the batch's nodes.
    Multi-label data (PPI): task ``BCE(z_s, y)`` and KD term ``T^2 * BCE(z_s/T, sigmoid(z_t/T))``,
    each a mean over n*C (``kl_reduction`` does not apply; METHODS.md, G-CRD ``ppi_pyg``);
    on multi-graph data over the nodes of each batch of graphs (:func:`gkd_bench.fit.make_batches`).
    """

    minibatch = True

    def __init__(self, lam: float = 0.5, T: float = 1.0, kl_reduction: str = "batchmean",
                 kd_nodes: str = "all"):
        super().__init__(kd_nodes)
        check_kd_hparams(lam, T, kl_reduction)
        self.lam, self.T, self.kl_reduction = float(lam), float(T), kl_reduction

    def loss(self, batch, student_out, teacher_out):
        zs, zt = student_out.logits, teacher_out.logits
        ce = task_loss(zs, batch.y, batch.train_idx, batch.multilabel,
                       batch.task_loss)
        kd = kd_loss(zs[batch.kd_idx], zt[batch.kd_idx], self.T, self.kl_reduction, batch.multilabel)
        return {"loss": (1 - self.lam) * ce + self.lam * kd, "task": ce, "kd": kd}
