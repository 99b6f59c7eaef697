"""``lsp``: local structure preserving distillation (Yang et al., "Distilling Knowledge from Graph
Convolutional Networks", CVPR 2020), with the G-CRD variant (Joshi et al., TNNLS 2022)."""
from __future__ import annotations

import weakref
from typing import Optional, Tuple

import torch

from gkd_bench.methods._kernels import KERNELS, check_kernel, pair_kernel
from gkd_bench.methods._projection import RepresentationDistiller, pick_layer
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


def local_structure(h: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, num_nodes: int,
                    kernel: str = "cosine") -> torch.Tensor:
    """``log S_i(j)`` for every edge ``j -> i``: the log-softmax of ``k(h_j, h_i)`` over i's incoming
    edges (Yang et al., CVPR 2020; METHODS.md "lsp"); the softmax of :func:`lsp_loss`.

    Args:
        h: representations ``[n, d]``.
        src, dst: int64 ``[E]`` edge end points (row indices into h).
        num_nodes: n.
        kernel: one of ``cosine, poly, l2, rbf, distillgcn``.

    Returns:
        ``[E]`` log-probabilities (each node's incoming edges sum to 1 in probability).
    """
    return segment_log_softmax(pair_kernel(h[src], h[dst], kernel), dst, num_nodes)


def lsp_loss(h_s: torch.Tensor, h_t: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, num_nodes: int,
             kernel: str = "cosine", reduction: str = "edge",
             teacher_structure: Optional[torch.Tensor] = None) -> torch.Tensor:
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
        teacher_structure: ``local_structure(h_t, src, dst, num_nodes, kernel)`` ``[E]`` computed
            before (a frozen teacher's is the same every step); ``None`` computes it from ``h_t``.

    Returns:
        scalar tensor (0 when there is no edge).

    Raises:
        ValueError: unknown kernel or reduction, row counts that differ, or a ``teacher_structure``
            that is not ``[E]``.
    """
    check_kernel(kernel)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")
    if h_s.shape[0] != h_t.shape[0]:
        raise ValueError(f"lsp: student has {h_s.shape[0]} rows, teacher {h_t.shape[0]}")
    if teacher_structure is not None and tuple(teacher_structure.shape) != (src.numel(),):
        raise ValueError(f"lsp: teacher_structure has shape {tuple(teacher_structure.shape)}, "
                         f"expected ({src.numel()},) (one value per edge)")
    if src.numel() == 0:
        return h_s.sum() * 0.0
    log_s = local_structure(h_s, src, dst, num_nodes, kernel)
    log_t = local_structure(h_t, src, dst, num_nodes, kernel) if teacher_structure is None else teacher_structure
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
        self._teacher_key = None
        self._teacher_log = None

    def _batch_edges(self, batch):
        """Induced edges of the batch, memoised for the same graph object and KD-node tensor."""
        key = self._edges_key
        if key is None or key[0]() is not batch.graph or key[1] is not batch.kd_idx:
            self._edges = induced_edges(batch.graph, batch.kd_idx)
            self._edges_key = (weakref.ref(batch.graph), batch.kd_idx)
        return self._edges

    def _teacher_structure(self, batch, teacher_out, ht, src, dst):
        """The teacher's ``local_structure`` ``[E]`` of the batch, memoised while the batch's graph,
        KD-node tensor and teacher representation tensor (unchanged in place) stay the same objects:
        in full-batch training every epoch reuses it (the frozen teacher's term is a constant; this
        skips ~60% of an LSP step on squirrel, values unchanged bit for bit). Mini-batches are new
        objects each step and recompute it."""
        raw = pick_layer(teacher_out, self.teacher_layer, "teacher")
        key = self._teacher_key
        if (key is not None and key[0]() is batch.graph and key[1] is batch.kd_idx and key[2]() is raw
                and key[3] == raw._version):
            return self._teacher_log
        self._teacher_log = local_structure(ht, src, dst, ht.shape[0], self.kernel).detach()
        self._teacher_key = (weakref.ref(batch.graph), batch.kd_idx, weakref.ref(raw), raw._version)
        return self._teacher_log

    def aux_loss(self, batch, student_out, teacher_out):
        hs, ht = self.representations(batch, student_out, teacher_out)
        src, dst = self._batch_edges(batch)
        log_t = self._teacher_structure(batch, teacher_out, ht, src, dst) if src.numel() else None
        return lsp_loss(hs, ht, src, dst, hs.shape[0], self.kernel, self.reduction, teacher_structure=log_t)
