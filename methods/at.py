"""``at``: attention transfer (Zagoruyko & Komodakis, ICLR 2017) in G-CRD's graph form (Joshi et al., TNNLS 2022)."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from gkd_bench.methods._projection import RepresentationDistiller
from gkd_bench.registry import DISTILLERS


def at_loss(h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
    """``MSE(a_s / ||a_s||, a_t / ||a_t||)`` with ``a_i = ||h_i||_2^2`` per node.

    The attention vector ``a`` (length n) is L2-normalised *across nodes*, so
    the value scales like 1/n (hence beta up to 1e5 in the reference scripts).

    Args:
        h_s: student representations ``[n, d_s]``.
        h_t: teacher representations ``[n, d_t]`` (widths may differ).

    Returns:
        scalar tensor (mean over the n nodes). Source: G-CRD ``at_criterion``
        (``arxiv_pyg/criterion.py``).

    Raises:
        ValueError: different node counts.
    """
    if h_s.shape[0] != h_t.shape[0]:
        raise ValueError(f"at: student has {h_s.shape[0]} rows, teacher {h_t.shape[0]}")
    a_s = h_s.pow(2).sum(-1)
    a_t = h_t.pow(2).sum(-1)
    return F.mse_loss(F.normalize(a_s, p=2, dim=0), F.normalize(a_t, p=2, dim=0))


@DISTILLERS.register("at")
class AT(RepresentationDistiller):
    """``L = CE(y, z_s)[train] + beta * MSE(a_s/||a_s||, a_t/||a_t||)[kd nodes]``, ``a_i = ||h_i||^2`` (METHODS.md).

    No projection heads (the reference uses raw representations). Defaults:
    beta 1e5 (G-CRD ``arxiv_pyg/scripts/run_gcn.sh``; ``kd+at``: 1e4). On a
    multi-graph batch the attention vector is normalised within each graph and
    the term averaged over the graphs (:meth:`per_graph`).

    Args:
        beta: weight of the attention term.
        student_layer, teacher_layer: indices into ``ModelOutput.hidden`` (-1 = last).
        kd_nodes: ``all`` | ``train``.
    """

    aux_name = "at"

    def __init__(self, beta: float = 1e5, student_layer: int = -1, teacher_layer: int = -1,
                 kd_nodes: str = "all"):
        super().__init__(beta, student_layer, teacher_layer, 0, None, kd_nodes)

    def aux_loss(self, batch, student_out, teacher_out):
        hs, ht = self.representations(batch, student_out, teacher_out)
        return self.per_graph(batch, hs, ht, at_loss)
