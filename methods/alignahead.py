"""``alignahead``: online distillation between K peer students, no teacher.

Guo, Chen, Wang: "Alignahead: Online Cross-Layer Knowledge Extraction on
Graph Neural Networks" (IJCNN 2022) and "Alignahead++" (arXiv 2210.13743);
reference code GuoJY-eatsTG/Alignahead (``main.py`` ``train_student``,
``local_structure.py`` ``distanceNet``). Specification: METHODS.md
"Alignahead and Alignahead++".

Local structure of a representation ``h`` ``[N, d]`` (the DistillGCN kernel,
Yang et al., CVPR 2020): for every edge ``j -> i``
``e_ij = exp(-||h_i - h_j||_1 / 100)`` and ``S_i = softmax_j(e_ij)`` over the
incoming edges of ``i`` (``dgl.nn.functional.edge_softmax``). Between a
learner and a peer::

    L_LS(learner, peer) = 1/N sum_i KL(S^peer_i || S^learner_i)
                        = 1/N sum_i sum_{j -> i} S^peer_ij (log S^peer_ij - log S^learner_ij)

(a node without incoming edges contributes 0; the peer side carries no
gradient). The loss of student k on a batch::

    L_k = task(y, z_k)
        + a * 1/(K-1) * sum_{m != k} sum_{(l, l') in pairs} L_LS(h^l_k, h^l'_m)
        + b * 1/(K-1) * sum_{m != k} sum_{(l, l') in pairs}
              MSE(normalize(P_kl(h^l_k)), normalize(h^l'_m))     [feature_align]
        + 1/L * sum_{l < L} task(y, W_kl h^l_k)                  [deep_supervision]

with ``pairs`` from :func:`layer_pairs` over the H hidden representations of
the student (``ModelOutput.hidden``), ``L = H + 1`` its number of layers,
``P_kl`` a Linear projection when the two widths differ (identity otherwise)
and ``W_kl`` a Linear classifier per hidden layer. Projections and heads
belong to student k and are stepped by its optimiser; they are not part of
the evaluated student.

Schedule (reference ``train_student``): each epoch, each student in turn makes
a full pass over the training batches; on each batch its peers'
representations are those of their current weights, computed without
gradient, and only the learner's optimiser steps. Peers are run in eval mode
(**re-derived**: the reference student has no dropout, so its train and eval
modes agree); a peer's output is therefore deterministic and is computed once
per (peer, batch) and reused until that peer steps again, which makes the
cost of an epoch linear in K: K forward+backward passes and at most 2(K-1)
gradient-free forward passes per batch.

Differences from the reference code, all deliberate:

- Students are initialised independently (the reference deep-copies student
  1 into the others): ``identical_init=True`` restores the reference.
- Model selection on validation only (the reference also selected on the
  training loss), per student (fit keeps each student's best weights).
- ``hidden`` holds post-activation representations (the reference aligns the
  pre-activation outputs of its GAT layers).
- Feature alignment and deep supervision are **re-derived** forms (the
  Alignahead++ text does not fix them; METHODS.md).

Shapes: ``h^l`` ``[N, d_l]``; logits ``[N, C]``; local structures ``[E]``.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from gkd_bench.data import ModelOutput
from gkd_bench.methods._distiller import Batch, Distiller, StudentEnsemble, task_loss
from gkd_bench.registry import DISTILLERS

PAIRINGS = ("same", "ahead-code", "ahead-paper")


def layer_pairs(pairing: str, num_hidden: int) -> List[Tuple[int, int]]:
    """Which hidden layers are aligned: a list of ``(learner layer, peer layer)`` indices.

    Indices run over the H hidden representations (``ModelOutput.hidden``),
    0-based:

    - ``same``: ``(l, l)`` for every l (the reference's ``OC`` strategy).
    - ``ahead-code`` (the released code): learner ``l+1`` <- peer ``l`` for
      l = 0..H-2, plus learner ``0`` <- peer ``H-1``.
    - ``ahead-paper`` (paper figure, Alignahead++ abstract): learner ``l`` <-
      peer ``l+1`` for l = 0..H-2, plus learner ``H-1`` <- peer ``0``.

    With H = 1 all three give ``[(0, 0)]``.

    Raises:
        ValueError: unknown ``pairing`` or ``num_hidden < 1``.
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}; got {pairing!r}")
    H = int(num_hidden)
    if H < 1:
        raise ValueError(f"alignahead needs a student with at least one hidden layer, got {H}")
    if pairing == "same":
        return [(l, l) for l in range(H)]
    if pairing == "ahead-code":
        return [(l + 1, l) for l in range(H - 1)] + [(0, H - 1)]
    return [(l, l + 1) for l in range(H - 1)] + [(H - 1, 0)]


def local_structure(graph, h: torch.Tensor, scale: float = 100.0) -> torch.Tensor:
    """DistillGCN local structure: ``S_ij = softmax_{j -> i}(exp(-||h_i - h_j||_1 / scale))``.

    Args:
        graph: DGL graph with N nodes and E edges, as the dataset stores it (no self-loops added or
            removed, as the reference uses its PPI graphs): planetoid graphs have none, CPF-protocol
            graphs (coauthor-cs, amazon-*) store ``A + I``, so there ``S_i`` also weighs ``i`` itself
            (``e_ii = 1``, the largest kernel value).
        h: node representations ``[N, d]``.
        scale: the kernel's length scale (DistillGCN and Alignahead: 100). When
            neighbour L1 distances are much smaller than ``scale`` every
            ``e_ij`` is close to 1 and ``S_i`` close to uniform.

    Returns:
        ``[E]`` edge weights in edge-id order; for each destination node they
        sum to 1 over its incoming edges.
    """
    from dgl.nn.functional import edge_softmax

    # the DistillGCN kernel (gkd_bench.methods._kernels "distillgcn") on every edge
    e = torch.exp(-edge_l1(graph, h) / float(scale))
    return edge_softmax(graph, e.unsqueeze(-1)).squeeze(-1)


#: edges per chunk of :func:`edge_l1` (a chunk of 8192 x 48 floats stays in cache: 2.5x faster than
#: materialising the [E, d] difference on coauthor-cs, one thread)
EDGE_L1_CHUNK = 8192


def _chunked_l1(h: torch.Tensor, h_neg: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    out = h.new_empty(len(src))
    buf = h.new_empty(min(EDGE_L1_CHUNK, len(src)), h.shape[1])
    for a in range(0, len(src), EDGE_L1_CHUNK):
        b = min(a + EDGE_L1_CHUNK, len(src))
        diff = _edge_diff(h, h_neg, src[a:b], dst[a:b], buf[: b - a])
        torch.sum(diff.abs_(), -1, out=out[a:b])
    return out


def _edge_diff(h, h_neg, src, dst, out):
    """``h[src] + h_neg[dst]`` written into ``out`` ``[len(src), d]`` (no temporaries)."""
    torch.index_select(h, 0, src, out=out)
    return out.add_(torch.index_select(h_neg, 0, dst))


class _EdgeL1(torch.autograd.Function):
    """``||h_u - h_v||_1`` per edge from ``h`` and ``h_neg = -h``, chunked (no ``[E, d]`` tensor in the
    forward). Computes exactly what ``dgl.ops.u_sub_v(g, h, h).abs().sum(-1)`` computes (DGL forms
    ``u_sub_v`` as ``u_add_v(h, -h)``) and backpropagates the same way: ``dZ = grad * sgn(h_u - h_v)``
    ``[E, d]``, then DGL's ``copy_e_sum`` over out-edges into ``h`` and over in-edges into ``h_neg``,
    so results and gradients are bit-identical to the unfused expression."""

    @staticmethod
    def forward(ctx, h, h_neg, graph):
        src, dst = graph.edges()
        ctx.graph = graph
        ctx.save_for_backward(h, h_neg, src, dst)
        return _chunked_l1(h, h_neg, src, dst)

    @staticmethod
    def backward(ctx, grad):
        import dgl

        h, h_neg, src, dst = ctx.saved_tensors
        graph = ctx.graph
        dz = h.new_empty(len(src), h.shape[1])
        for a in range(0, len(src), EDGE_L1_CHUNK):
            b = min(a + EDGE_L1_CHUNK, len(src))
            _edge_diff(h, h_neg, src[a:b], dst[a:b], dz[a:b]).sgn_().mul_(grad[a:b].unsqueeze(-1))
        d_h = dgl.ops.copy_e_sum(dgl.reverse(graph), dz) if ctx.needs_input_grad[0] else None
        d_neg = dgl.ops.copy_e_sum(graph, dz) if ctx.needs_input_grad[1] else None
        return d_h, d_neg, None


def edge_l1(graph, h: torch.Tensor) -> torch.Tensor:
    """``||h_u - h_v||_1`` ``[E]`` for every edge ``u -> v`` (edge-id order) of ``graph``; ``h`` ``[N, d]``.

    Equal, values and gradients, to ``dgl.ops.u_sub_v(graph, h, h).abs().sum(-1)``, in edge chunks of
    :data:`EDGE_L1_CHUNK` so the ``[E, d]`` difference is never materialised in the forward (the
    local-structure kernel is most of an Alignahead epoch: 12 structures per epoch at K = 2).

    Raises:
        ValueError: ``h`` is not 2-D.
    """
    if h.dim() != 2:
        raise ValueError(f"edge_l1: h must be [N, d], got {tuple(h.shape)}")
    if torch.is_grad_enabled() and h.requires_grad:
        return _EdgeL1.apply(h, -h, graph)
    src, dst = graph.edges()
    return _chunked_l1(h, -h, src, dst)


def local_structure_kl(graph, s_learner: torch.Tensor, s_peer: torch.Tensor) -> torch.Tensor:
    """``1/N sum_i sum_{j -> i} s_peer_ij (log s_peer_ij - log s_learner_ij)`` = mean_i KL(S^peer_i || S^learner_i).

    Args:
        graph: the DGL graph both structures live on (N nodes, E edges).
        s_learner, s_peer: ``[E]`` outputs of :func:`local_structure`; no
            gradient flows into ``s_peer``.

    Returns:
        scalar tensor (nodes without incoming edges count as 0 in the mean).
    """
    s_peer = s_peer.detach()
    kl_e = s_peer * (s_peer.log() - s_learner.log())
    _, dst = graph.edges()
    per_node = torch.zeros(graph.num_nodes(), dtype=kl_e.dtype, device=kl_e.device).index_add_(0, dst, kl_e)
    return per_node.mean()


def feature_align_loss(h_learner: torch.Tensor, h_peer: torch.Tensor) -> torch.Tensor:
    """``MSE(normalize(h_learner), normalize(h_peer))``: rows L2-normalised, mean over N*d (re-derived)."""
    return F.mse_loss(F.normalize(h_learner, dim=-1), F.normalize(h_peer.detach(), dim=-1))


class _PeerView:
    """A peer's detached outputs on one batch: hidden representations and local structures."""

    def __init__(self, hidden: Sequence[torch.Tensor], structures: Dict[int, torch.Tensor]):
        self.hidden = tuple(hidden)
        self.structures = structures


@DISTILLERS.register("alignahead")
class Alignahead(Distiller):
    """Online cross-layer alignment between K peer students (module docstring has the formula).

    Args:
        num_students: K >= 1 (K = 1: the student alone, plus deep supervision
            when on; identical to ``none`` otherwise).
        pairing: ``ahead-code`` (released code, default) | ``ahead-paper`` |
            ``same`` (see :func:`layer_pairs`).
        a: weight of the local-structure term (reference 1).
        feature_align: add the feature-alignment term (Alignahead++).
        b: weight of the feature-alignment term (re-derived; default 1).
        deep_supervision: add a Linear classifier with its own task loss on
            every hidden layer, weight 1/L (Alignahead++; re-derived).
        identical_init: start every student from student 0's weights (the
            reference code); default: independent initialisation.
        kernel_scale: length scale of the local-structure kernel (reference
            100). On Cora the neighbour distances of our students are 0.7-6,
            so at 100 the structure term is ~1e-4 of the task loss. A scale
            near the distances makes the structures less uniform (the softmax
            runs over kernel values in (0, 1], so one weight can be at most e
            times another); a setting to sweep, not a published value.

    Raises:
        ValueError: ``num_students < 1``, unknown ``pairing``, negative
            weights, or (in :meth:`setup`) a student without hidden layers.
    """

    needs_teacher = False
    online = True

    def __init__(self, num_students: int = 2, pairing: str = "ahead-code", a: float = 1.0,
                 feature_align: bool = False, b: float = 1.0, deep_supervision: bool = False,
                 identical_init: bool = False, kernel_scale: float = 100.0):
        super().__init__("all")
        if int(num_students) < 1:
            raise ValueError(f"num_students must be >= 1, got {num_students}")
        if pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}; got {pairing!r}")
        if a < 0 or b < 0:
            raise ValueError(f"weights a and b must be >= 0, got a={a}, b={b}")
        if not float(kernel_scale) > 0:
            raise ValueError(f"kernel_scale must be > 0, got {kernel_scale}")
        self.kernel_scale = float(kernel_scale)
        self.num_students, self.pairing = int(num_students), pairing
        self.a, self.b = float(a), float(b)
        self.feature_align, self.deep_supervision = bool(feature_align), bool(deep_supervision)
        self.identical_init = bool(identical_init)
        self.pairs: List[Tuple[int, int]] = []
        self.heads = nn.ModuleList()   # [K][H] Linear(d_l, C) when deep_supervision
        self.projs = nn.ModuleList()   # [K][len(pairs)] Linear or Identity when feature_align

    # ------------------------------------------------------------ building
    def build_students(self, first: nn.Module, factory: Callable[[], nn.Module]) -> StudentEnsemble:
        """The K students: ``first``, then K-1 more from ``factory()`` (or deep copies of
        ``first`` when ``identical_init``)."""
        students = [first]
        for _ in range(self.num_students - 1):
            students.append(copy.deepcopy(first) if self.identical_init else factory())
        return StudentEnsemble(students)

    def setup(self, data, student: nn.Module, teacher_out: Optional[ModelOutput]) -> None:
        """Read the students' hidden widths (one gradient-free forward pass) and build the
        layer pairs, deep-supervision heads and projections.

        Raises:
            ValueError: ``student`` is not a :class:`StudentEnsemble` of K
                students, or exposes no hidden layer.
        """
        if not isinstance(student, StudentEnsemble) or len(student) != self.num_students:
            raise ValueError(f"alignahead expects a StudentEnsemble of {self.num_students} students "
                             "(built by build_students)")
        probe = data.graphs["train"][0] if getattr(data, "graphs", None) else data
        first = student[0]
        was = first.training
        first.eval()
        with torch.no_grad():
            out = first(probe.graph, probe.x)
        first.train(was)
        dims = [int(h.shape[-1]) for h in out.hidden]
        if not dims:
            raise ValueError(f"alignahead needs students with at least one hidden layer; "
                             f"{type(first).__name__} exposes none (use num_layers >= 2)")
        self.pairs = layer_pairs(self.pairing, len(dims))
        C = int(out.logits.shape[-1])
        K = self.num_students
        if self.deep_supervision:
            self.heads = nn.ModuleList(nn.ModuleList(nn.Linear(d, C) for d in dims) for _ in range(K))
        if self.feature_align:
            self.projs = nn.ModuleList(
                nn.ModuleList(nn.Linear(dims[l], dims[p]) if dims[l] != dims[p] else nn.Identity()
                              for l, p in self.pairs) for _ in range(K))

    def make_optimizers(self, students: StudentEnsemble, cfg) -> List[torch.optim.Optimizer]:
        """One optimiser per student (:func:`gkd_bench.fit.make_optimizer`: ``cfg.optimizer``, Adam by
        default, ``cfg.lr``, ``cfg.weight_decay``) over its weights and its own heads and projections."""
        from gkd_bench.fit import make_optimizer

        opts = []
        for k, m in enumerate(students):
            params = list(m.parameters())
            if self.deep_supervision:
                params += list(self.heads[k].parameters())
            if self.feature_align:
                params += list(self.projs[k].parameters())
            opts.append(make_optimizer(params, cfg))
        return opts

    # ------------------------------------------------------------ training
    def peer_view(self, peer: nn.Module, batch: Batch) -> _PeerView:
        """A peer's eval-mode, gradient-free hidden representations and local structures on ``batch``."""
        was = peer.training
        peer.eval()
        with torch.no_grad():
            out = peer(batch.graph, batch.x)
            structures = {p: local_structure(batch.graph, out.hidden[p], self.kernel_scale) for p in {p for _, p in self.pairs}}
        peer.train(was)
        return _PeerView(out.hidden, structures)

    def learner_step(self, k: int, batch: Batch, students: StudentEnsemble, optimizer: torch.optim.Optimizer,
                     peers: Sequence[_PeerView]) -> Dict[str, float]:
        """One optimisation step of student k against its peers' views; only ``optimizer`` steps.

        Returns:
            the named terms (floats): ``loss``, ``task`` and, when active,
            ``structure``, ``feature``, ``deep``.
        """
        student = students[k]
        student.train()
        self.train()
        optimizer.zero_grad(set_to_none=True)
        out = student(batch.graph, batch.x)
        task = task_loss(out.logits, batch.y, batch.train_idx, batch.multilabel,
                         batch.task_loss)
        terms = {"task": task}
        loss = task
        if self.deep_supervision:
            deep = sum(task_loss(head(h), batch.y, batch.train_idx, batch.multilabel,
                                 batch.task_loss)
                       for head, h in zip(self.heads[k], out.hidden)) / (len(out.hidden) + 1)
            terms["deep"] = deep
            loss = loss + deep
        if peers:
            mine = {l: local_structure(batch.graph, out.hidden[l], self.kernel_scale) for l in {l for l, _ in self.pairs}}
            structure = sum(local_structure_kl(batch.graph, mine[l], pv.structures[p])
                            for pv in peers for l, p in self.pairs) / len(peers)
            terms["structure"] = structure
            loss = loss + self.a * structure
            if self.feature_align:
                feature = sum(feature_align_loss(proj(out.hidden[l]), pv.hidden[p])
                              for pv in peers for proj, (l, p) in zip(self.projs[k], self.pairs)) / len(peers)
                terms["feature"] = feature
                loss = loss + self.b * feature
        loss.backward()
        optimizer.step()
        terms["loss"] = loss
        return {n: float(v.detach()) for n, v in terms.items()}

    def train_epoch(self, batches, students: StudentEnsemble, optimizers, teacher_out=None) -> Dict[str, float]:
        """The alternating schedule: each student in turn makes a pass over ``batches``.

        Returns:
            each term's mean over students and batches.
        """
        if not isinstance(students, StudentEnsemble) or len(optimizers) != len(students):
            raise ValueError("alignahead.train_epoch expects the StudentEnsemble and one optimiser per student")
        cache: Dict[Tuple[int, int], _PeerView] = {}
        acc: Dict[str, List[float]] = {}
        K = len(students)
        for k in range(K):
            for b, batch in enumerate(batches):
                peers = []
                for m in range(K):
                    if m != k:
                        if (m, b) not in cache:
                            cache[(m, b)] = self.peer_view(students[m], batch)
                        peers.append(cache[(m, b)])
                for n, v in self.learner_step(k, batch, students, optimizers[k], peers).items():
                    acc.setdefault(n, []).append(v)
            for key in [key for key in cache if key[0] == k]:  # student k has moved on
                del cache[key]
        return {n: sum(v) / len(v) for n, v in acc.items()}

    def loss(self, batch, student_out, teacher_out=None):
        raise NotImplementedError("alignahead trains through train_epoch (several students); it has no "
                                  "single-student loss")

    def train_step(self, batch, student, optimizer, teacher_out=None):
        raise NotImplementedError("alignahead trains through train_epoch (several students)")
