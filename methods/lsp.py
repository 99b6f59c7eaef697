"""``lsp``: local structure preserving distillation (Yang et al., "Distilling Knowledge from Graph
Convolutional Networks", CVPR 2020), with the G-CRD variant (Joshi et al., TNNLS 2022)."""
from __future__ import annotations

import weakref
from typing import Tuple

import torch

from gkd_bench.methods._kernels import KERNELS, check_kernel, pair_kernel
from gkd_bench.methods._projection import RepresentationDistiller
from gkd_bench.registry import DISTILLERS

REDUCTIONS = ("node", "edge")


def segment_log_softmax(scores: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Log-softmax of ``scores`` ``[E]`` within the groups given by ``index`` ``[E]`` (values < num_segments).

    The edge softmax of DGL (``edge_softmax``, normalised over each node's
    incoming edges when ``index`` is the destination) and of PyG
    (``torch_geometric.utils.softmax(scores, dst)``), in log space.
    """
    maxes = torch.full((num_segments,), float("-inf"), dtype=scores.dtype, device=scores.device)
    maxes = maxes.scatter_reduce(0, index, scores.detach(), reduce="amax", include_self=True)
    shifted = scores - maxes[index]
    sums = torch.zeros(num_segments, dtype=scores.dtype, device=scores.device).index_add(0, index, shifted.exp())
    return shifted - sums.log()[index]


def lsp_loss(h_s: torch.Tensor, h_t: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, num_nodes: int,
             kernel: str = "cosine", reduction: str = "edge") -> torch.Tensor:
    """Local structure KL: ``S_i(j) = softmax_{j in N(i)} k(h_i, h_j)`` over each edge ``j -> i``;
    ``sum_edges S^t_i(j) * (log S^t_i(j) - log S^s_i(j))`` divided by the edge count (``edge``,
    G-CRD's ``F.kl_div(..., reduction='mean')``) or by ``num_nodes`` (``node``: mean over nodes of
    each node's KL(S^t_i || S^s_i), DistillGCN's ``graph_KLDiv``; nodes without in-edges count as 0).

    Args:
        h_s: student representations ``[n, d_s]``; h_t: teacher ``[n, d_t]``.
        src, dst: int64 ``[E]`` edge end points (row indices into h).
        num_nodes: n (the ``node`` reduction's denominator).
        kernel: one of ``cosine, poly, l2, rbf, distillgcn`` (see :mod:`gkd_bench.methods._kernels`).
        reduction: ``edge`` | ``node``.

    Returns:
        scalar tensor (0 when there is no edge).

    Raises:
        ValueError: unknown kernel or reduction, or row counts that differ.
    """
    check_kernel(kernel)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")
    if h_s.shape[0] != h_t.shape[0]:
        raise ValueError(f"lsp: student has {h_s.shape[0]} rows, teacher {h_t.shape[0]}")
    if src.numel() == 0:
        return h_s.sum() * 0.0
    e_s = pair_kernel(h_s[src], h_s[dst], kernel)
    e_t = pair_kernel(h_t[src], h_t[dst], kernel)
    log_s = segment_log_softmax(e_s, dst, num_nodes)
    log_t = segment_log_softmax(e_t, dst, num_nodes)
    kl = (log_t.exp() * (log_t - log_s)).sum()
    return kl / (src.numel() if reduction == "edge" else max(int(num_nodes), 1))


def induced_edges(graph, nodes: torch.Tensor, self_loops: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Edges of ``graph`` with both end points in ``nodes``, relabelled to positions in ``nodes``.

    Self-loops ``i -> i`` are left out unless ``self_loops``: LSP's softmax runs over the neighbours
    ``j in N(i)`` of each node (METHODS.md "lsp"; the G-CRD reference graph, ogbn-arxiv made symmetric,
    has none), while graphs as stored may carry them (CPF graphs are ``A + I``; DGL's citeseer has 124).

    Returns:
        ``(src, dst)`` int64 ``[E']`` with values in ``[0, len(nodes))``.
    """
    src, dst = graph.edges()
    local = torch.full((graph.num_nodes(),), -1, dtype=torch.long, device=src.device)
    local[nodes] = torch.arange(len(nodes), device=src.device)
    s, d = local[src.long()], local[dst.long()]
    keep = (s >= 0) & (d >= 0)
    if not self_loops:
        keep &= src != dst
    return s[keep], d[keep]


@DISTILLERS.register("lsp")
class LSP(RepresentationDistiller):
    """``L = CE(y, z_s)[train] + beta * LSP(h_s, h_t)`` on the graph induced by the KD nodes (METHODS.md).

    Two variants, both settings: G-CRD's (defaults: ``kernel=cosine``,
    ``reduction=edge``, raw representations; ``arxiv_pyg/criterion.py``
    ``lpw_criterion``, beta 100) and the original DistillGCN
    (``kernel=distillgcn``, ``reduction=node``). Edges are the graph's as
    stored less its self-loops (:func:`induced_edges`: the neighbourhood
    ``N(i)`` leaves ``i`` out); the softmax of edge ``j -> i`` runs over
    i's other incoming edges. On a multi-graph batch (``dgl.batch`` of several
    graphs) the edges are the batch graph's own, which never join two graphs,
    so every neighbourhood lies in one graph; the reduction runs over all
    edges (nodes) of the batch.

    Args:
        beta: weight of the LSP term.
        kernel: ``cosine | poly | l2 | rbf | distillgcn``.
        reduction: ``edge`` (G-CRD) | ``node`` (DistillGCN).
        student_layer, teacher_layer: indices into ``ModelOutput.hidden`` (-1 = last).
        kd_nodes: ``all`` | ``train``.
    """

    aux_name = "lsp"
    minibatch_sets = False  # its edges are the graph's: a node mini-batch has none of its own

    def __init__(self, beta: float = 100.0, kernel: str = "cosine", reduction: str = "edge",
                 student_layer: int = -1, teacher_layer: int = -1, kd_nodes: str = "all"):
        super().__init__(beta, student_layer, teacher_layer, 0, None, kd_nodes)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")
        self.kernel, self.reduction = kernel, reduction
        self._edges_key = None
        self._edges = None

    def _batch_edges(self, batch):
        """Induced edges of the batch, memoised for the same graph object and KD-node tensor."""
        key = self._edges_key
        if key is None or key[0]() is not batch.graph or key[1] is not batch.kd_idx:
            self._edges = induced_edges(batch.graph, batch.kd_idx)
            self._edges_key = (weakref.ref(batch.graph), batch.kd_idx)
        return self._edges

    def aux_loss(self, batch, student_out, teacher_out):
        hs, ht = self.representations(batch, student_out, teacher_out)
        src, dst = self._batch_edges(batch)
        return lsp_loss(hs, ht, src, dst, hs.shape[0], self.kernel, self.reduction)
