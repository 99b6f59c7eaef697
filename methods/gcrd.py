"""``gcrd``: Graph Contrastive Representation Distillation (Joshi et al., "On Representation Knowledge
Distillation for Graph Neural Networks", TNNLS 2022)."""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from gkd_bench.methods._projection import RepresentationDistiller
from gkd_bench.registry import DISTILLERS


class _ChunkedContrastiveCE(torch.autograd.Function):
    """Mean over anchors i of ``logsumexp_j(s_i . t_j / tau) - s_i . t_i / tau``, in row chunks.

    One pass over row chunks of the score matrix computes each row's
    log-softmax (the loss is minus its diagonal entry) and, when gradients are
    needed, the gradients themselves:
    with ``P = softmax_j(s_i . t_j / tau)``, ``dL/ds = (P - I) t / (tau M)`` and
    ``dL/dt = (P - I)^T s / (tau M)``. No M x M matrix is ever held (peak
    extra memory: a few ``chunk x M`` blocks plus two ``M x p`` gradient
    buffers) and no score is computed twice (3 matrix products of
    ``chunk x p x M`` per chunk in all, the same as an unchunked
    forward + backward).
    """

    @staticmethod
    def forward(ctx, s, t, tau: float, chunk: int, need_grad: bool):
        m = s.shape[0]
        nll = torch.empty(m, dtype=s.dtype, device=s.device)
        gs = torch.empty_like(s) if need_grad else None
        gt = torch.zeros_like(t) if need_grad else None
        s_tau = s / tau                        # [M, p]: scale the factor, not each chunk x M block
        for a in range(0, m, chunk):
            b = min(a + chunk, m)
            # one fused pass per block (max, log-sum-exp, subtract) instead of logsumexp's several;
            # then exp_ turns the block into the softmax rows P in place
            logp = torch.log_softmax(torch.mm(s_tau[a:b], t.t()), dim=1)       # [c, M]
            rows = torch.arange(b - a, device=s.device)
            nll[a:b] = logp[rows, rows + a].neg()                              # -log P_ii
            if need_grad:
                p = logp.exp_()
                torch.mm(p, t, out=gs[a:b])
                gt.addmm_(p.t(), s[a:b])
                del p  # the same block as logp: free it before the next block is scored
            del logp
        if need_grad:
            gs.sub_(t)
            gt.sub_(s)
            ctx.save_for_backward(gs, gt)
        ctx.scale = 1.0 / (tau * m)
        return nll.mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        gs, gt = ctx.saved_tensors
        scale = grad * ctx.scale
        return gs * scale, gt * scale, None, None, None


def gcrd_loss(z_s: torch.Tensor, z_t: torch.Tensor, tau: float = 0.075, chunk_size: int = 1024) -> torch.Tensor:
    """Contrastive CE of the G-CRD paper: ``s_i = normalize(z_s_i)``, ``t_i = normalize(z_t_i)``,
    scores ``s_i . t_j / tau``, ``CE(scores_i, target i)`` averaged over the M anchors (positive:
    the same node in teacher space; negatives: the other M-1 teacher rows; no memory bank).

    Args:
        z_s: student (projected) representations ``[M, p]``.
        z_t: teacher (projected) representations ``[M, p]``.
        tau: temperature (> 0).
        chunk_size: rows of the score matrix computed at once; ``0`` (or >= M)
            computes the full M x M matrix with ``F.cross_entropy``. Both give
            the same value and gradients; chunking bounds the extra memory to
            a few ``chunk_size * M`` floats (the gradients are formed during
            the forward pass, chunk by chunk).

    Returns:
        scalar tensor. Source: G-CRD ``nce_criterion`` (``arxiv_pyg/criterion.py``).

    Raises:
        ValueError: shapes differ, tau <= 0 or chunk_size < 0.
    """
    if z_s.shape != z_t.shape or z_s.dim() != 2:
        raise ValueError(f"gcrd: student {tuple(z_s.shape)} and teacher {tuple(z_t.shape)} must be equal [M, p]")
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    if chunk_size < 0:
        raise ValueError(f"chunk_size must be >= 0 (0 = no chunking), got {chunk_size}")
    s = F.normalize(z_s, p=2, dim=-1)
    t = F.normalize(z_t, p=2, dim=-1)
    m = s.shape[0]
    if chunk_size == 0 or chunk_size >= m:
        return F.cross_entropy(s @ t.t() / tau, torch.arange(m, device=s.device))
    need_grad = torch.is_grad_enabled() and (s.requires_grad or t.requires_grad)
    return _ChunkedContrastiveCE.apply(s, t, float(tau), int(chunk_size), need_grad)


@DISTILLERS.register("gcrd")
class GCRD(RepresentationDistiller):
    """``L = CE(y, z_s)[train] + beta * CRD(P_s(h_s), P_t(h_t))`` on M = min(n, max_samples) sampled KD nodes
    (METHODS.md, :func:`gcrd_loss`).

    Heads Linear -> BatchNorm1d -> ReLU of size ``proj_dim`` see every KD
    node; then M nodes are drawn without replacement with a generator seeded
    from torch's global RNG at setup. Defaults: tau 0.075, M 16384, p 256,
    beta 0.1 (``kd+gcrd``: 0.01) from G-CRD ``arxiv_pyg/scripts/run_gcn.sh``.
    On a multi-graph batch, anchors and negatives come from one graph at a time
    (M per graph) and the term is averaged over the graphs (:meth:`per_graph`),
    as the PPI reference (``ppi_pyg/gnn.py``, one graph per step).

    Args:
        beta: weight of the contrastive term.
        tau: temperature.
        max_samples: M's upper bound.
        proj_dim: projection size (0 = none; widths must then match).
        chunk_size: score-matrix rows per block (0 = unchunked).
        student_layer, teacher_layer: indices into ``ModelOutput.hidden`` (-1 = last).
        kd_nodes: ``all`` | ``train``.
    """

    aux_name = "gcrd"
    uses_projection = True
    needs_equal_width = True

    def __init__(self, beta: float = 0.1, tau: float = 0.075, max_samples: int = 16384, proj_dim: int = 256,
                 chunk_size: int = 1024, student_layer: int = -1, teacher_layer: int = -1,
                 kd_nodes: str = "all"):
        super().__init__(beta, student_layer, teacher_layer, proj_dim, None, kd_nodes)
        if float(tau) <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        if int(chunk_size) < 0:
            raise ValueError(f"chunk_size must be >= 0 (0 = no chunking), got {chunk_size}")
        self.tau, self.max_samples = float(tau), self.check_max_samples(max_samples)
        self.chunk_size = int(chunk_size)

    def aux_loss(self, batch, student_out, teacher_out):
        return self.sampled_aux(batch, student_out, teacher_out, self.max_samples,
                                lambda hs, ht: gcrd_loss(hs, ht, self.tau, self.chunk_size))
