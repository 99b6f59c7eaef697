"""Projection heads and the base class of the representation distillers.

Projection head (METHODS.md; G-CRD reference ``arxiv_pyg/gnn_kd_and_aux.py``:
``Sequential(Linear(d, p), BatchNorm1d(p), ReLU())``), one for the student and
one for the teacher representation, trained together with the student by the
same optimiser (``fit`` collects ``distiller.parameters()``); the teacher
backbone stays frozen (its outputs arrive detached).

:class:`RepresentationDistiller` holds what ``fitnet``, ``at``, ``lsp``,
``gsp``, ``gcrd`` and their ``kd+`` combinations share: the choice of the
student/teacher layer pair, the heads, node sampling, and the total loss

    standalone:  L = CE(y, z_s)[train] + beta * aux
    with KD:     L = (1-lam) * CE(y, z_s)[train] + lam * T^2 * KL(p_t || p_s)[kd nodes] + beta * aux

(the G-CRD reference adds ``beta * aux`` to the task loss, resp. to its
``kd_criterion``, without re-weighting; ``gnn.py`` / ``gnn_kd_and_aux.py``).

Multi-graph batches (PPI: ``GRAPHS_PER_BATCH`` graphs joined by ``dgl.batch``,
:func:`gkd_bench.fit.make_batches`): the teacher rows are the batch's own
(``Batch.teacher``). Terms that compare a *set* of nodes with each other --
AT's normalisation across nodes, GSP's kernel matrix, G-CRD's negatives -- are
computed on each graph of the batch separately and averaged over its graphs
(:meth:`RepresentationDistiller.per_graph`), as the G-CRD PPI reference
(``ppi_pyg/gnn.py``) sees one graph per step; nodes of different graphs are
never paired. LSP's edges never cross graphs; per-node terms (FitNet, KD)
average over the batch's nodes. Projection heads see every KD node of the
batch (their BatchNorm statistics are the batch's).

Node mini-batches (``train.batching: minibatch``, a node-wise student such as SIGN;
``minibatch_sets``): the same, with one mini-batch as the node set -- the G-CRD
reference's SIGN (``arxiv_dgl/sign.py``) computes every term over batches of 50,000
training nodes. LSP reads the graph's edges and does not mini-batch.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from gkd_bench.data import ModelOutput
from gkd_bench.methods._distiller import Batch, Distiller, task_loss
from gkd_bench.methods.kd import check_kd_hparams, kd_loss
from gkd_bench.minibatch import node_batchable, node_outputs


class ProjectionHead(nn.Sequential):
    """``Linear(in_dim, proj_dim) -> BatchNorm1d(proj_dim) -> ReLU``.

    Shapes: ``[n, in_dim] -> [n, proj_dim]``. In training mode BatchNorm uses
    the statistics of the ``n`` rows it is given (n >= 2 needed).

    Raises:
        ValueError: non-positive dimensions.
    """

    def __init__(self, in_dim: int, proj_dim: int):
        if int(in_dim) < 1 or int(proj_dim) < 1:
            raise ValueError(f"projection head needs positive dimensions, got in_dim={in_dim}, "
                             f"proj_dim={proj_dim}")
        super().__init__(nn.Linear(int(in_dim), int(proj_dim)), nn.BatchNorm1d(int(proj_dim)), nn.ReLU())


def pick_layer(out: ModelOutput, layer: int, role: str) -> torch.Tensor:
    """``out.hidden[layer]`` (Python indexing: -1 = last hidden layer).

    Raises:
        ValueError: the model has no hidden representation or ``layer`` is out of range.
    """
    n = len(out.hidden)
    if n == 0:
        raise ValueError(f"the {role} exposes no hidden representation (a 1-layer model?); representation "
                         "distillation needs ModelOutput.hidden")
    if not -n <= int(layer) < n:
        raise ValueError(f"{role}_layer={layer} is out of range: the {role} has {n} hidden layer(s) "
                         f"(valid: {-n}..{n - 1})")
    return out.hidden[int(layer)]


class RepresentationDistiller(Distiller):
    """Base of the representation distillers (see the module docstring for the loss).

    Subclasses implement :meth:`aux_loss` and set ``aux_name`` and
    ``uses_projection`` / ``needs_equal_width``. All distillation terms apply to ``batch.kd_idx``.

    Args:
        beta: weight of the auxiliary term.
        student_layer, teacher_layer: which entries of ``ModelOutput.hidden``
            to distil (default: the last hidden layer of each).
        proj_dim: projection size p (0 = no heads; then the two widths must match).
        kd: ``None`` (standalone) or ``{"lam", "T", "kl_reduction"}`` for ``kd+<x>``.
        kd_nodes: ``all`` | ``train`` (which nodes the distillation terms use).

    Raises:
        ValueError: bad values (negative beta, lam outside [0, 1], T <= 0,
            unknown ``kl_reduction``).
    """

    aux_name = "aux"
    minibatch_sets = True      # with batching: minibatch, set terms run over each mini-batch
    uses_projection = False    # builds heads when proj_dim > 0
    needs_equal_width = False  # the unprojected loss compares student and teacher rows directly

    def __init__(self, beta: float, student_layer: int = -1, teacher_layer: int = -1, proj_dim: int = 0,
                 kd: Optional[dict] = None, kd_nodes: str = "all"):
        super().__init__(kd_nodes)
        if float(beta) < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if int(proj_dim) < 0:
            raise ValueError(f"proj_dim must be >= 0 (0 = no projection), got {proj_dim}")
        self.beta = float(beta)
        self.student_layer, self.teacher_layer = int(student_layer), int(teacher_layer)
        self.proj_dim = int(proj_dim)
        self.kd: Optional[dict] = None
        if kd is not None:
            self.enable_kd(**kd)
        self.student_proj: Optional[nn.Module] = None
        self.teacher_proj: Optional[nn.Module] = None
        self._generator: Optional[torch.Generator] = None

    def enable_kd(self, lam: float, T: float, kl_reduction: str) -> None:
        """Add the logit KD term ``lam * T^2 * KL`` and weight the task loss by ``1 - lam`` (``kd+<x>``).

        Raises:
            ValueError: lam outside [0, 1], T <= 0 or unknown ``kl_reduction``.
        """
        lam, T = float(lam), float(T)
        check_kd_hparams(lam, T, kl_reduction)
        self.kd = {"lam": lam, "T": T, "kl_reduction": kl_reduction}

    # ------------------------------------------------------------ setup
    def setup(self, data, student: nn.Module, teacher_out: Optional[ModelOutput]) -> None:
        """Check the layer pair and build the projection heads (when ``proj_dim > 0``).

        Runs one eval-mode forward pass of ``student`` on ``data`` to learn its
        hidden width (on two nodes for node-wise students, graph-free or with
        ``forward_nodes``, such as SIGN: a full pass on ogbn-arxiv would hold
        gigabytes only to read a width); seeds the node-sampling generator from
        torch's global RNG (which the runner seeds per run).

        Raises:
            ValueError: no teacher outputs, a layer index out of range, or
                unequal widths without projection where the loss needs equal ones.
        """
        if teacher_out is None:
            raise ValueError(f"{type(self).__name__} needs teacher outputs")
        was = student.training
        student.eval()
        with torch.no_grad():
            if node_batchable(student):
                s_out = node_outputs(student, data.graph, data.x, torch.arange(min(2, data.x.shape[0])))
            else:
                s_out = student(data.graph, data.x)
        student.train(was)
        hs = pick_layer(s_out, self.student_layer, "student")
        ht = pick_layer(teacher_out, self.teacher_layer, "teacher")
        device = hs.device
        if self.uses_projection and self.proj_dim > 0:
            self.student_proj = ProjectionHead(hs.shape[1], self.proj_dim).to(device)
            self.teacher_proj = ProjectionHead(ht.shape[1], self.proj_dim).to(device)
        elif self.needs_equal_width and hs.shape[1] != ht.shape[1]:
            raise ValueError(f"{type(self).__name__}: student width {hs.shape[1]} != teacher width "
                             f"{ht.shape[1]}; set proj_dim > 0 to project both")
        self.reset_generator()

    def reset_generator(self, seed: Optional[int] = None) -> None:
        """(Re)seed the node-sampling generator: from ``seed``, or one draw of torch's global RNG."""
        if seed is None:
            seed = int(torch.randint(0, 2 ** 62, (1,)))
        self._generator = torch.Generator().manual_seed(int(seed))

    def sample(self, n: int, m: int) -> Optional[torch.Tensor]:
        """``m`` of ``n`` positions drawn without replacement, or ``None`` when ``m >= n`` (use all)."""
        if m >= n:
            return None
        if self._generator is None:
            self.reset_generator()
        return torch.randperm(n, generator=self._generator)[:m]

    # ------------------------------------------------------------- loss
    def representations(self, batch: Batch, student_out: ModelOutput, teacher_out: ModelOutput,
                        project: bool = False):
        """Student and teacher representations of the KD nodes ``[n, d_s]``, ``[n, d_t]``
        (projected by the heads when ``project`` and heads exist); the teacher's is detached."""
        hs = pick_layer(student_out, self.student_layer, "student")[batch.kd_idx]
        ht = pick_layer(teacher_out, self.teacher_layer, "teacher").detach()[batch.kd_idx]
        if project and self.student_proj is not None:
            hs, ht = self.student_proj(hs), self.teacher_proj(ht)
        return hs, ht

    @staticmethod
    def graph_segments(batch: Batch) -> List[Optional[torch.Tensor]]:
        """Positions in ``batch.kd_idx`` (rows of :meth:`representations`) grouped by the graph they
        belong to, graphs in batch order, empty groups left out.

        ``[None]`` (one group: every row) unless the batch joins several graphs
        (``batch.graph_sizes`` with more than one entry).

        Returns:
            a list of int64 position tensors (or ``[None]``).
        """
        sizes = batch.graph_sizes
        if sizes is None or len(sizes) <= 1:
            return [None]
        kd = batch.kd_idx
        owner = torch.repeat_interleave(torch.arange(len(sizes), device=kd.device), sizes.to(kd.device))[kd]
        segs = [(owner == g).nonzero(as_tuple=True)[0] for g in range(len(sizes))]
        return [s for s in segs if len(s)]

    def per_graph(self, batch: Batch, hs: torch.Tensor, ht: torch.Tensor,
                  fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``fn(hs, ht)``, or on a multi-graph batch the mean over its graphs g of
        ``fn(hs[rows of g], ht[rows of g])`` (:meth:`graph_segments`).

        Shapes: ``hs`` ``[n, d_s]``, ``ht`` ``[n, d_t]`` (rows = ``batch.kd_idx``); returns a scalar.
        """
        segs = self.graph_segments(batch)
        if segs == [None]:
            return fn(hs, ht)
        return torch.stack([fn(hs[s], ht[s]) for s in segs]).mean()

    def sampled_aux(self, batch: Batch, student_out: ModelOutput, teacher_out: ModelOutput, max_samples: int,
                    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``fn`` on M = min(n, ``max_samples``) KD nodes drawn without replacement (:meth:`sample`),
        after projection (the heads see every KD node, as the G-CRD reference: project, then sample),
        per graph of a multi-graph batch (:meth:`per_graph`). GSP's kernel matrix and G-CRD's
        negatives compare the M sampled nodes with each other.

        Shapes: ``fn`` takes ``[M, p]``, ``[M, p]`` and returns a scalar; so does this method.
        """
        def on_sample(hs: torch.Tensor, ht: torch.Tensor) -> torch.Tensor:
            idx = self.sample(hs.shape[0], max_samples)
            if idx is not None:
                hs, ht = hs[idx], ht[idx]
            return fn(hs, ht)

        hs, ht = self.representations(batch, student_out, teacher_out, project=True)
        return self.per_graph(batch, hs, ht, on_sample)

    @staticmethod
    def check_max_samples(max_samples: int) -> int:
        """``int(max_samples)``. Raises: ValueError: fewer than 2 (a set term needs a pair of nodes)."""
        if int(max_samples) < 2:
            raise ValueError(f"max_samples must be >= 2, got {max_samples}")
        return int(max_samples)

    def aux_loss(self, batch: Batch, student_out: ModelOutput, teacher_out: ModelOutput) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: Batch, student_out: ModelOutput,
             teacher_out: Optional[ModelOutput]) -> Dict[str, torch.Tensor]:
        if teacher_out is None:
            raise ValueError(f"{type(self).__name__} needs teacher outputs")
        zs = student_out.logits
        ce = task_loss(zs, batch.y, batch.train_idx, batch.multilabel,
                       batch.task_loss)
        aux = self.aux_loss(batch, student_out, teacher_out)
        terms = {"task": ce, self.aux_name: aux}
        if self.kd is None:
            total = ce + self.beta * aux
        else:
            kd = kd_loss(zs[batch.kd_idx], teacher_out.logits[batch.kd_idx], self.kd["T"],
                         self.kd["kl_reduction"], batch.multilabel)
            total = (1 - self.kd["lam"]) * ce + self.kd["lam"] * kd + self.beta * aux
            terms["kd"] = kd
        terms["loss"] = total
        return terms
