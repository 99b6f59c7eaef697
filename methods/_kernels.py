"""Similarity kernels between node representations, shared by ``lsp`` and ``gsp``.

Kernels (METHODS.md "Offline distillers"; G-CRD reference code
``chaitjo/efficient-gnns``, ``arxiv_pyg/criterion.py`` functions
``lpw_criterion`` / ``gpw_criterion``; DistillGCN reference code
``ihollywhy/DistillGCN.PyTorch``, ``local_structure.py``):

==============  ==========================================  =========================
name            k(a, b)                                     source
==============  ==========================================  =========================
``cosine``      a.b / (||a||_2 ||b||_2)                     G-CRD
``poly``        cosine(a, b) ** 2                           G-CRD
``l2``          ||a - b||_2 (a distance, used as the score  G-CRD
                as the reference code does)
``rbf``         exp(-0.5 ||a - b||_2^2)                     G-CRD
``distillgcn``  exp(-||a - b||_1 / 100)                     DistillGCN (LSP, Yang et
                                                            al., CVPR 2020)
==============  ==========================================  =========================

:func:`pair_kernel` evaluates ``k`` row by row on paired rows (edges, for LSP);
:func:`matrix_kernel` evaluates every pair of rows of one matrix (GSP).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

KERNELS = ("cosine", "poly", "l2", "rbf", "distillgcn")

# torch.nn.functional.cosine_similarity's default eps (row norms are clamped to it).
_EPS = 1e-8


def check_kernel(kernel: str) -> str:
    """Return ``kernel`` if it is one of :data:`KERNELS`; ValueError naming the choices otherwise."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    return kernel


def pair_kernel(a: torch.Tensor, b: torch.Tensor, kernel: str) -> torch.Tensor:
    """``k(a_e, b_e)`` for every row ``e``.

    Args:
        a, b: ``[E, d]`` paired rows (e.g. the two end points of E edges).
        kernel: one of :data:`KERNELS`.

    Returns:
        ``[E]`` kernel values.

    Raises:
        ValueError: unknown kernel or mismatched shapes.
    """
    check_kernel(kernel)
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"pair_kernel expects two [E, d] tensors of one shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if kernel in ("cosine", "poly"):
        c = F.cosine_similarity(a, b, dim=-1, eps=_EPS)
        return c if kernel == "cosine" else c * c
    diff = a - b
    if kernel == "l2":
        return torch.linalg.vector_norm(diff, ord=2, dim=-1)
    if kernel == "rbf":
        return torch.exp(-0.5 * diff.pow(2).sum(-1))
    return torch.exp(-diff.abs().sum(-1) / 100.0)


def matrix_kernel(x: torch.Tensor, kernel: str) -> torch.Tensor:
    """``K[i, j] = k(x_i, x_j)`` for all pairs of rows of ``x``.

    Args:
        x: ``[M, d]`` representations.
        kernel: one of :data:`KERNELS`.

    Returns:
        ``[M, M]`` kernel matrix (diagonal included: 1 for cosine/poly/rbf/
        distillgcn, 0 for l2), as the G-CRD reference computes it.

    Raises:
        ValueError: unknown kernel or ``x`` not 2-D.
    """
    check_kernel(kernel)
    if x.dim() != 2:
        raise ValueError(f"matrix_kernel expects an [M, d] tensor, got shape {tuple(x.shape)}")
    if kernel in ("cosine", "poly"):
        xn = F.normalize(x, p=2, dim=-1, eps=_EPS)
        c = xn @ xn.t()
        return c if kernel == "cosine" else c * c
    if kernel == "distillgcn":
        return torch.exp(-torch.cdist(x, x, p=1.0) / 100.0)
    d = torch.cdist(x, x, p=2.0)
    if kernel == "l2":
        return d
    return torch.exp(-0.5 * d * d)
