"""``fitnet``: FitNets hint loss (Romero et al., ICLR 2015) in G-CRD's graph form (Joshi et al., TNNLS 2022)."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from gkd_bench.methods._projection import RepresentationDistiller
from gkd_bench.registry import DISTILLERS


def fitnet_loss(h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
    """``MSE(normalize(h_s), normalize(h_t))``: rows L2-normalised, mean over all n*p entries.

    Args:
        h_s: student (projected) representations ``[n, p]``.
        h_t: teacher (projected) representations ``[n, p]``.

    Returns:
        scalar tensor. Source: G-CRD ``fitnet_criterion`` (``arxiv_pyg/criterion.py``).

    Raises:
        ValueError: mismatched shapes.
    """
    if h_s.shape != h_t.shape:
        raise ValueError(f"fitnet: student {tuple(h_s.shape)} and teacher {tuple(h_t.shape)} representations differ")
    return F.mse_loss(F.normalize(h_s, p=2, dim=-1), F.normalize(h_t, p=2, dim=-1))


@DISTILLERS.register("fitnet")
class FitNet(RepresentationDistiller):
    """``L = CE(y, z_s)[train] + beta * MSE(normalize(P_s(h_s)), normalize(P_t(h_t)))[kd nodes]`` (METHODS.md).

    ``P_s``, ``P_t``: projection heads Linear -> BatchNorm1d -> ReLU of size
    ``proj_dim`` (0: no heads, widths must match). Defaults follow the G-CRD
    ogbn-arxiv scripts (``arxiv_pyg/scripts/run_gcn.sh``: beta 1000, p 256;
    ``kd+fitnet``: beta 100).

    Args:
        beta: weight of the hint term.
        proj_dim: projection size p.
        student_layer, teacher_layer: indices into ``ModelOutput.hidden`` (-1 = last).
        kd_nodes: ``all`` | ``train``.
    """

    aux_name = "fitnet"
    uses_projection = True
    needs_equal_width = True

    def __init__(self, beta: float = 1000.0, proj_dim: int = 256, student_layer: int = -1,
                 teacher_layer: int = -1, kd_nodes: str = "all"):
        super().__init__(beta, student_layer, teacher_layer, proj_dim, None, kd_nodes)

    def aux_loss(self, batch, student_out, teacher_out):
        hs, ht = self.representations(batch, student_out, teacher_out, project=True)
        return fitnet_loss(hs, ht)
