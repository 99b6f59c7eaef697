"""``gsp``: global structure preserving distillation (Joshi et al., "On Representation Knowledge
Distillation for Graph Neural Networks", TNNLS 2022)."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from gkd_bench.methods._kernels import _EPS, KERNELS, matrix_kernel
from gkd_bench.methods._projection import RepresentationDistiller
from gkd_bench.registry import DISTILLERS


def gsp_loss(h_s: torch.Tensor, h_t: torch.Tensor, kernel: str = "cosine") -> torch.Tensor:
    """``MSE(K_s, K_t)`` over all M x M pairs (diagonal included), ``K[i, j] = k(h_i, h_j)``.

    Args:
        h_s: student representations of the M sampled nodes ``[M, d_s]``.
        h_t: teacher representations of the same nodes ``[M, d_t]``.
        kernel: ``cosine | poly | l2 | rbf | distillgcn``.

    Returns:
        scalar tensor. Source: G-CRD ``gpw_criterion`` (``arxiv_pyg/criterion.py``).
        Memory: two M x M matrices (M = 4096: 2 x 64 MB in float32), except for the cosine kernel
        when M > d_s + d_t, computed from d x d products instead (:func:`cosine_gram_mse`).

    Raises:
        ValueError: unknown kernel or different row counts.
    """
    if h_s.shape[0] != h_t.shape[0]:
        raise ValueError(f"gsp: student has {h_s.shape[0]} rows, teacher {h_t.shape[0]}")
    if kernel == "cosine" and h_s.shape[0] > h_s.shape[1] + h_t.shape[1]:
        return cosine_gram_mse(h_s, h_t)
    return F.mse_loss(matrix_kernel(h_s, kernel), matrix_kernel(h_t, kernel))


def cosine_gram_mse(h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
    """``MSE(K_s, K_t)`` of the cosine kernels without forming them (:func:`gsp_loss`'s path when
    M > d_s + d_t).

    With S, T the row-normalised ``h_s`` ``[M, d_s]`` and ``h_t`` ``[M, d_t]``, ``K_s = S S^T`` and
    ``K_t = T T^T``, so ``||K_s - K_t||_F^2 = ||S^T S||_F^2 - 2 ||S^T T||_F^2 + ||T^T T||_F^2``
    (expand the square and use ``tr(A B^T B A^T) = ||A^T B||_F^2``): O(M d^2) operations and d x d
    matrices instead of O(M^2 d) and two M x M ones (cora, M = 2708, d = 256: about 7x fewer
    multiply-adds). The same value up to float rounding; the three norms are summed in float64, so the
    cancellation between them costs no float32 precision.

    Returns:
        scalar tensor (``h_s``'s dtype), clamped at 0 against rounding.
    """
    s = F.normalize(h_s, p=2, dim=-1, eps=_EPS)
    t = F.normalize(h_t, p=2, dim=-1, eps=_EPS)
    sq = lambda a, b: (a.t() @ b).double().square().sum()  # noqa: E731
    m = h_s.shape[0]
    return ((sq(s, s) - 2 * sq(s, t) + sq(t, t)) / (m * m)).clamp_min(0).to(h_s.dtype)


@DISTILLERS.register("gsp")
class GSP(RepresentationDistiller):
    """``L = CE(y, z_s)[train] + beta * MSE(K_s, K_t)`` on M = min(n, max_samples) sampled KD nodes (METHODS.md).

    Representations are projected by heads Linear -> BatchNorm1d -> ReLU of
    size ``proj_dim`` (0 = raw representations, as G-CRD's PPI code); the
    heads see every KD node, then M nodes are drawn without replacement
    (as the reference: project, then sample). Sampling uses a generator
    seeded from torch's global RNG at setup (the runner seeds it per run).
    Defaults from G-CRD ``arxiv_pyg/scripts/run_gcn.sh`` (cosine kernel,
    beta 100, M 4096; ``kd+gsp``: beta 10); p = 256 per METHODS.md (the
    ogbn-arxiv scripts use 128). On a multi-graph batch, M nodes are drawn
    from each graph and the term is the mean over graphs of each graph's
    ``MSE(K_s, K_t)`` (no pair joins two graphs; :meth:`per_graph`).

    Args:
        beta: weight of the GSP term.
        kernel: ``cosine | poly | l2 | rbf | distillgcn``.
        max_samples: M's upper bound.
        proj_dim: projection size (0 = none).
        student_layer, teacher_layer: indices into ``ModelOutput.hidden`` (-1 = last).
        kd_nodes: ``all`` | ``train``.
    """

    aux_name = "gsp"
    uses_projection = True

    def __init__(self, beta: float = 100.0, kernel: str = "cosine", max_samples: int = 4096,
                 proj_dim: int = 256, student_layer: int = -1, teacher_layer: int = -1,
                 kd_nodes: str = "all"):
        super().__init__(beta, student_layer, teacher_layer, proj_dim, None, kd_nodes)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
        self.kernel, self.max_samples = kernel, self.check_max_samples(max_samples)

    def aux_loss(self, batch, student_out, teacher_out):
        return self.sampled_aux(batch, student_out, teacher_out, self.max_samples,
                                lambda hs, ht: gsp_loss(hs, ht, self.kernel))
