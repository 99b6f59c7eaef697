"""``sa_mlp``: Structure-Aware MLP (Chen et al., "SA-MLP: Distilling Graph Knowledge from GNNs
into Structure-Aware MLP", arXiv 2210.09609; TMLR 2024). METHODS.md "SA-MLP".

Per node i with feature row ``x_i`` and (binary, symmetric) adjacency row ``a_i``::

    s_i   = W_A a_i                              structure encoder: sum of learned rows of W_A
                                                 over i's neighbours (EmbeddingBag, mode 'sum')
    H_A   = ReLU(Dropout(s_i + b_A))
    H_X   = ReLU(Dropout(W_X x_i + b_X))         feature encoder
    y_A   = MLP_A(H_A),  y_X = MLP_X(H_X)        decoders (default one Linear hidden -> C)
    alpha = sigmoid(w^T [H_A || H_X] + b)        one gate per node
    z     = alpha * y_A + (1 - alpha) * y_X

``W_A`` is stored as an embedding table ``[R, hidden]`` (row j = the column of
W_A for node j), so ``W_A a_i`` is computed from i's neighbour-id list without
ever forming a dense ``N x N`` matrix: memory is ``O(R * hidden + nnz)``.
Inference needs the node's feature row and its neighbour-id list only (no
multi-hop fetching): :meth:`SAMLP.online_forward` (= ``online_compute`` of
``online_gather``, the hooks of the ``online@B`` latency scenario).

Training on all nodes of a graph uses a custom backward (``dW_A = A^T dH``
computed as the same gather-sum, valid because A's pattern is symmetric),
about 10x faster on CPU than EmbeddingBag's scatter backward.

**Node ids and unseen nodes (inductive setting).** The runner calls
:meth:`SAMLP.bind_data` with the full :class:`~gkd_bench.data.GraphData`
before training. Transductive: the table has one row per node. Inductive:
one row per *observed* node, in the order of the training view
(``GraphData.observed``); held-out nodes have no row. A graph passed to
``forward`` is read in one of two id spaces, told apart by its node count:
``R`` nodes = the training view (ids are table rows); ``N`` (full) nodes =
the full graph, whose ids are mapped to rows through ``observed``; a node
without a row is *unseen* and a neighbour without a row is dropped from the
neighbour list. Unseen nodes get their structure term from

- ``unseen="adjacency"`` (default): their own full-graph neighbour list,
  restricted to observed neighbours (a new node arrives with its edges);
- ``unseen="predictor"``: ``g(x_i)`` in place of ``W_A a_i``, where ``g`` is
  a 2-layer MLP ``F -> hidden -> hidden`` trained by the ``sa_mlp_ind``
  distiller (latent structure embedding approximation, arXiv v1,
  **re-derived**); their adjacency rows are then never read.

Adjacency (**re-derived**, METHODS.md): binary, symmetric, duplicates merged,
no self-loops by default (``self_loops=True`` adds them); ``adj_norm``:
``none`` (binary sum), ``mean`` (row ``1/d_i``) or ``sym`` (``1/sqrt(d_i d_j)``),
with d the degree in the (binarised, symmetrised) graph the model is given,
counted before neighbours without a table row are dropped.
"""
from __future__ import annotations

import contextlib
import math
import weakref
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gkd_bench.data import ModelOutput
from gkd_bench.methods._common import sparse_linear
from gkd_bench.registry import MODELS

ADJ_NORMS = ("none", "mean", "sym")
UNSEEN_MODES = ("adjacency", "predictor")

_CSR_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def adjacency_csr(graph, self_loops: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Binary symmetric adjacency of ``graph`` in CSR form, memoised per graph object.

    Edges are read from the graph's COO edge list (``graph.edges()``), both
    directions are added, duplicates merged, self-loops removed (then one per
    node added when ``self_loops``). Built with ``scipy.sparse`` (int32
    indices while they fit), so a graph with 10^8 directed edges needs a few
    GB at most; never densified.

    Args:
        graph: a ``dgl.DGLGraph`` with N nodes.
        self_loops: include i in its own neighbour list.

    Returns:
        ``(indptr, indices)``: int64 ``[N + 1]`` and ``[nnz]`` (int32 when
        N < 2^31, else int64); the neighbours of i are
        ``indices[indptr[i]:indptr[i+1]]``, sorted.
    """
    per_graph = _CSR_CACHE.get(graph)
    if per_graph is None:
        per_graph = {}
        _CSR_CACHE[graph] = per_graph
    if self_loops in per_graph:
        return per_graph[self_loops]
    import scipy.sparse as sp

    n = int(graph.num_nodes())
    src, dst = graph.edges()
    src, dst = src.numpy(), dst.numpy()
    keep = src != dst
    src, dst = src[keep], dst[keep]
    idx_dtype = np.int32 if n < 2 ** 31 - 1 else np.int64
    m = len(src)
    row, col = np.empty(2 * m, dtype=idx_dtype), np.empty(2 * m, dtype=idx_dtype)
    row[:m], row[m:], col[:m], col[m:] = src, dst, dst, src
    del src, dst, keep
    # coo -> csr merges duplicates (summing their values) and sorts the indices
    mat = sp.csr_matrix((np.ones(len(row), dtype=np.float32), (row, col)), shape=(n, n))
    del row, col
    mat.sum_duplicates()
    if self_loops:
        mat = (mat + sp.identity(n, dtype=np.float32, format="csr")).tocsr()
        mat.sum_duplicates()
    indptr = torch.from_numpy(mat.indptr.astype(np.int64))
    indices = torch.from_numpy(mat.indices)  # int32 while node ids fit: half the memory of int64
    del mat
    per_graph[self_loops] = (indptr, indices)
    return indptr, indices


def gather_rows(indptr: torch.Tensor, indices: torch.Tensor,
                nodes: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Neighbour-id lists of ``nodes`` (all nodes when ``None``) from a CSR.

    Returns:
        ``(cols, offsets)``: concatenated neighbour ids ``[m]`` and bag
        offsets ``[len(nodes) + 1]`` (int64; bag k is ``cols[offsets[k]:offsets[k+1]]``).
    """
    if nodes is None:
        return indices, indptr
    nodes = nodes.long()
    starts = indptr[nodes]
    counts = indptr[nodes + 1] - starts
    offsets = torch.zeros(len(nodes) + 1, dtype=torch.long)
    torch.cumsum(counts, 0, out=offsets[1:])
    total = int(offsets[-1])
    pos = torch.repeat_interleave(starts - offsets[:-1], counts, output_size=total) + torch.arange(total)
    return indices[pos], offsets


def _drop_unmapped(cols, offsets, weights, id_map):
    """Map neighbour ids through ``id_map`` (full id -> table row, -1 = none) and drop the unmapped."""
    if id_map is None:
        return cols, offsets, weights
    cols = id_map[cols]
    keep = cols >= 0
    kept = torch.zeros(len(keep) + 1, dtype=torch.long)
    torch.cumsum(keep.long(), 0, out=kept[1:])
    return cols[keep], kept[offsets], (None if weights is None else weights[keep])


class _SymmetricBagSum(torch.autograd.Function):
    """``out = A W`` by EmbeddingBag for a square A with a symmetric pattern (all rows, ids = table rows).

    Backward ``dW = A^T dOut`` is the same gather-sum over the same neighbour
    lists with the transposed entry weights (``w_bwd``), which is an order of
    magnitude faster on CPU than EmbeddingBag's own scatter backward and
    needs no extra memory.
    """

    @staticmethod
    def forward(ctx, weight, cols, offsets, w_fwd, w_bwd):
        ctx.save_for_backward(cols, offsets, w_bwd)
        return F.embedding_bag(cols, weight, offsets, mode="sum", per_sample_weights=w_fwd,
                               include_last_offset=True)

    @staticmethod
    def backward(ctx, grad):
        cols, offsets, w_bwd = ctx.saved_tensors
        grad_w = F.embedding_bag(cols, grad.contiguous(), offsets, mode="sum", per_sample_weights=w_bwd,
                                 include_last_offset=True)
        return grad_w, None, None, None, None


class SAMLP(nn.Module):
    """Structure-aware MLP: structure encoder on adjacency rows, feature encoder, gated decoders.

    Args:
        in_dim: F, feature width.
        num_classes: C.
        hidden: width of H_A and H_X (and of g).
        dropout: dropout rate inside both encoders (and between decoder layers).
        decoder_layers: Linear layers of each decoder MLP_A / MLP_X (1 = Linear hidden -> C).
        adj_norm: ``none`` | ``mean`` | ``sym`` (see module docstring).
        self_loops: include each node in its own neighbour list.
        unseen: ``adjacency`` | ``predictor`` (see module docstring).

    Shapes: ``forward(graph, x)`` with ``x`` ``[N, F]`` returns ``ModelOutput``
    with ``logits`` ``[N, C]`` and ``hidden = (H_A, H_X)``, both ``[N, hidden]``:
    the two encoder outputs as in the equations (post-ReLU; in training mode
    dropout is applied before the ReLU, as in METHODS.md). The gate is
    available from :meth:`forward_parts`. ``W_X x`` of a bag-of-words ``x`` with at least
    :data:`~gkd_bench.methods._common.SPARSE_MIN_ROWS` rows is multiplied from its non-zero entries,
    and so is the first layer of ``g`` in predictor mode (same result up to float rounding;
    ``sparse_first_layer = False`` forces the dense products).

    Raises:
        ValueError: bad hyperparameters, or a graph whose node count matches
            neither the bound training view nor the bound full graph.
    """

    graph_free = False

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 128, dropout: float = 0.5,
                 decoder_layers: int = 1, adj_norm: str = "none", self_loops: bool = False,
                 unseen: str = "adjacency"):
        super().__init__()
        if adj_norm not in ADJ_NORMS:
            raise ValueError(f"sa_mlp: adj_norm must be one of {ADJ_NORMS}, got {adj_norm!r}")
        if unseen not in UNSEEN_MODES:
            raise ValueError(f"sa_mlp: unseen must be one of {UNSEEN_MODES}, got {unseen!r}")
        if int(decoder_layers) < 1:
            raise ValueError(f"sa_mlp: decoder_layers must be >= 1, got {decoder_layers}")
        if int(hidden) < 1:
            raise ValueError(f"sa_mlp: hidden must be >= 1, got {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"sa_mlp: dropout must be in [0, 1), got {dropout}")
        self.in_dim, self.num_classes, self.hidden = int(in_dim), int(num_classes), int(hidden)
        self.adj_norm, self.self_loops, self.unseen = adj_norm, bool(self_loops), unseen
        # W_A as an embedding table [R, hidden]; R is known once bound to data (bind / bind_data).
        self.struct_weight = nn.UninitializedParameter()
        self.struct_bias = nn.Parameter(torch.empty(self.hidden))
        self.feat = nn.Linear(self.in_dim, self.hidden)
        self.dec_a = self._decoder(int(decoder_layers), dropout)
        self.dec_x = self._decoder(int(decoder_layers), dropout)
        self.gate = nn.Linear(2 * self.hidden, 1)
        self.dropout_p = float(dropout)
        self.sparse_first_layer = True  # W_X x from the non-zeros of x (a plain attribute, not state)
        self.predictor = (nn.Sequential(nn.Linear(self.in_dim, self.hidden), nn.ReLU(),
                                        nn.Linear(self.hidden, self.hidden))
                          if unseen == "predictor" else None)
        self.num_rows: Optional[int] = None       # R: rows of the table
        self.num_full: Optional[int] = None       # N of the full graph
        self.full_to_row: Optional[torch.Tensor] = None  # int64 [N_full], -1 = unseen (inductive only)
        self.all_unseen = False                   # sa_mlp_ind stage 2: treat every node as unseen
        self._register_load_state_dict_pre_hook(self._materialize_from_state)

    def _dropout(self, h: torch.Tensor) -> torch.Tensor:
        """Inverted dropout keeping a bool mask for backward (nn.Dropout on CPU keeps a float one:
        0.75 fewer bytes per element, ~1.5 GB less at 2M nodes x 128 for the two encoders)."""
        if not self.training or self.dropout_p == 0.0:
            return h
        return torch.native_dropout(h, self.dropout_p, True)[0]

    def _decoder(self, layers: int, dropout: float) -> nn.Sequential:
        mods = []
        for _ in range(layers - 1):
            mods += [nn.Linear(self.hidden, self.hidden), nn.ReLU(), nn.Dropout(dropout)]
        mods.append(nn.Linear(self.hidden, self.num_classes))
        return nn.Sequential(*mods)

    # ------------------------------------------------------------ binding
    def bind(self, num_nodes: int, observed: Optional[torch.Tensor] = None) -> "SAMLP":
        """Fix the node-id space: ``num_nodes`` nodes in the full graph, ``observed`` ids (or all) have rows.

        Materialises ``W_A`` (``[len(observed) or num_nodes, hidden]``) with the
        initialisation of ``nn.Linear(R, hidden)`` (uniform, bound
        ``1/sqrt(R)``). Binding again with the same sizes keeps the weights.

        Raises:
            ValueError: a different size than an earlier binding.
        """
        rows = int(num_nodes) if observed is None else int(len(observed))
        if self.num_rows is not None and (rows != self.num_rows or int(num_nodes) != self.num_full):
            raise ValueError(f"sa_mlp is bound to {self.num_rows} rows / {self.num_full} nodes; "
                             f"cannot rebind to {rows} / {num_nodes}")
        self.num_rows, self.num_full = rows, int(num_nodes)
        if observed is not None and rows != int(num_nodes):
            m = torch.full((int(num_nodes),), -1, dtype=torch.long)
            m[observed.long()] = torch.arange(rows)
            self.full_to_row = m
        if isinstance(self.struct_weight, nn.UninitializedParameter):
            self.struct_weight.materialize((rows, self.hidden))
            bound = 1.0 / math.sqrt(max(rows, 1))
            with torch.no_grad():
                self.struct_weight.uniform_(-bound, bound)
                self.struct_bias.uniform_(-bound, bound)
        return self

    def bind_data(self, data) -> "SAMLP":
        """Bind to a :class:`~gkd_bench.data.GraphData`: rows for ``data.observed`` (inductive) or all nodes."""
        return self.bind(data.num_nodes, data.observed)

    def _materialize_from_state(self, state_dict, prefix, *args):
        key = prefix + "struct_weight"
        if key in state_dict and isinstance(self.struct_weight, nn.UninitializedParameter):
            rows = state_dict[key].shape[0]
            self.bind(rows if self.num_full is None else self.num_full, None)

    def _id_space(self, graph) -> Optional[torch.Tensor]:
        """``None`` when the graph's ids are table rows, else the full-id -> row map."""
        n = int(graph.num_nodes())
        if self.num_rows is None:  # unbound (ad hoc use): every node of this graph has a row
            self.bind(n)
        if n == self.num_rows:
            return None
        if self.full_to_row is not None and n == self.num_full:
            return self.full_to_row
        raise ValueError(f"sa_mlp is bound to a training graph of {self.num_rows} nodes"
                         + (f" and a full graph of {self.num_full} nodes" if self.full_to_row is not None else "")
                         + f"; got a graph of {n} nodes")

    # ------------------------------------------------------------ encoders
    def _neighbour_lists(self, graph, nodes: Optional[torch.Tensor]):
        """Adjacency rows of ``nodes`` of ``graph`` (the only place rows are read; tests spy on it)."""
        indptr, indices = adjacency_csr(graph, self.self_loops)
        cols, offsets = gather_rows(indptr, indices, nodes)
        weights = weights_t = None
        if self.adj_norm != "none":
            deg = (indptr[1:] - indptr[:-1]).clamp(min=1).float()
            owner = torch.repeat_interleave(torch.arange(len(offsets) - 1), offsets[1:] - offsets[:-1],
                                            output_size=len(cols))
            own_deg = deg[owner] if nodes is None else deg[nodes.long()][owner]
            if self.adj_norm == "mean":
                weights, weights_t = 1.0 / own_deg, 1.0 / deg[cols]
            else:
                weights = weights_t = (own_deg * deg[cols]).rsqrt()
        return cols, offsets, weights, weights_t

    def structure(self, graph, nodes: Optional[torch.Tensor] = None,
                  id_map: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``W_A a_i`` for ``nodes`` of ``graph`` (all when ``None``): ``[n, hidden]``, no bias.

        ``id_map`` (full id -> row, -1 = none) drops neighbours without a row.
        """
        cols, offsets, weights, weights_t = self._neighbour_lists(graph, nodes)
        if id_map is None and nodes is None and torch.is_grad_enabled() and self.struct_weight.requires_grad:
            # all rows of a graph whose ids are table rows: A is square with a symmetric pattern
            return _SymmetricBagSum.apply(self.struct_weight, cols, offsets, weights, weights_t)
        return self._bag(*_drop_unmapped(cols, offsets, weights, id_map))

    def _bag(self, cols, offsets, weights) -> torch.Tensor:
        return F.embedding_bag(cols, self.struct_weight, offsets, mode="sum", per_sample_weights=weights,
                               include_last_offset=True)

    def _unseen_mask(self, id_map, nodes, n) -> torch.Tensor:
        if self.all_unseen:
            return torch.ones(n, dtype=torch.bool)
        if id_map is None:
            return torch.zeros(n, dtype=torch.bool)
        return (id_map if nodes is None else id_map[nodes]) < 0

    def _feature_product(self, x: torch.Tensor) -> torch.Tensor:
        """``W_X x_i`` ``[n, hidden]`` (no bias): from the non-zero entries of a bag-of-words ``x``
        (:func:`~gkd_bench.methods._common.sparse_linear`, as the MLP's first layer), else dense."""
        xw = sparse_linear(x, self.feat.weight) if self.sparse_first_layer else None
        return F.linear(x, self.feat.weight) if xw is None else xw

    def _predict_structure(self, x: torch.Tensor) -> torch.Tensor:
        """``g(x_i)`` ``[n, hidden]`` (predictor mode): its first layer from the non-zero entries of a
        bag-of-words ``x``, as :meth:`_feature_product`, else the dense ``nn.Sequential``."""
        first, act, last = self.predictor
        xw = sparse_linear(x, first.weight) if self.sparse_first_layer else None
        return self.predictor(x) if xw is None else last(act(xw + first.bias))

    def encode(self, graph, x: torch.Tensor, nodes: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Pre-activation encoder outputs of ``nodes`` (all when ``None``).

        Returns:
            dict with ``s`` = ``W_A a_i`` (or ``g(x_i)`` for unseen nodes in
            predictor mode) ``[n, hidden]``, ``xw`` = ``W_X x_i`` ``[n, hidden]``
            (both without bias) and ``unseen`` (bool ``[n]``).
        """
        if nodes is None:
            id_map = self._id_space(graph)
            unseen = self._unseen_mask(id_map, None, x.shape[0])
            if not (self.unseen == "predictor" and bool(unseen.any())):
                return {"s": self.structure(graph, None, id_map), "xw": self._feature_product(x),
                        "unseen": unseen}
            if bool(unseen.all()):  # g(x) for every node (sa_mlp_ind stage 2): on x itself, no gathered copy
                xw = self._feature_product(x)
                return {"s": self._predict_structure(x), "xw": xw, "unseen": unseen}
            nodes = torch.arange(x.shape[0])
        return self._encode_gathered(*self.online_gather(graph, x, nodes))

    def online_gather(self, graph, x: torch.Tensor, nodes: torch.Tensor):
        """What predicting ``nodes`` needs: their feature rows and neighbour-id lists (no computation).

        Returns:
            ``(xs [B, F], cols [m], offsets [B' + 1], weights [m] or None, unseen bool [B])``:
            neighbour lists (as table rows) of the B' nodes that use their
            adjacency row (all B, or the seen ones in predictor mode). Unseen
            nodes in predictor mode contribute no adjacency read.
        """
        nodes = nodes.long()
        id_map = self._id_space(graph)
        unseen = self._unseen_mask(id_map, nodes, len(nodes))
        rows = nodes[~unseen] if self.unseen == "predictor" else nodes
        cols, offsets, weights, _ = self._neighbour_lists(graph, rows)
        cols, offsets, weights = _drop_unmapped(cols, offsets, weights, id_map)
        return x[nodes], cols, offsets, weights, unseen

    def _encode_gathered(self, xs, cols, offsets, weights, unseen) -> Dict[str, torch.Tensor]:
        xw = self._feature_product(xs)
        s_rows = self._bag(cols, offsets, weights)
        if self.unseen == "predictor" and bool(unseen.any()):
            s = xw.new_zeros(xs.shape[0], self.hidden)
            s = s.index_put((unseen.nonzero(as_tuple=True)[0],), self._predict_structure(xs[unseen]))
            if len(s_rows):
                s = s.index_put(((~unseen).nonzero(as_tuple=True)[0],), s_rows)
        else:
            s = s_rows
        return {"s": s, "xw": xw, "unseen": unseen}

    def online_compute(self, xs, cols, offsets, weights, unseen) -> ModelOutput:
        """Logits ``[B, C]`` from :meth:`online_gather`'s output (the computation only)."""
        parts = self._encode_gathered(xs, cols, offsets, weights, unseen)
        return self.decode(parts["s"], parts["xw"])[0]

    def decode(self, s: torch.Tensor, xw: torch.Tensor) -> Tuple[ModelOutput, torch.Tensor]:
        """Biases, dropout, ReLU, decoders and gate from pre-activations ``s``, ``xw`` ``[n, hidden]``.

        Returns:
            (``ModelOutput(logits [n, C], (H_A, H_X))``, gate ``alpha`` ``[n, 1]``).
        """
        return self._head(self._dropout(s + self.struct_bias).relu(), self._dropout(xw + self.feat.bias).relu())

    def _head(self, h_a: torch.Tensor, h_x: torch.Tensor) -> Tuple[ModelOutput, torch.Tensor]:
        # w^T [H_A || H_X] + b without materialising the [n, 2 * hidden] concatenation
        w = self.gate.weight
        alpha = torch.sigmoid(torch.addmm(self.gate.bias, h_a, w[:, :self.hidden].t())
                              + h_x @ w[:, self.hidden:].t())
        z = alpha * self.dec_a(h_a) + (1 - alpha) * self.dec_x(h_x)
        return ModelOutput(z, (h_a, h_x)), alpha

    def forward_parts(self, graph, x: torch.Tensor, nodes: Optional[torch.Tensor] = None):
        """``(ModelOutput, parts)`` where parts = :meth:`encode`'s dict plus ``alpha`` ``[n, 1]``."""
        parts = self.encode(graph, x, nodes)
        out, alpha = self.decode(parts["s"], parts["xw"])
        parts["alpha"] = alpha
        return out, parts

    def forward(self, graph, x: torch.Tensor) -> ModelOutput:
        parts = self.encode(graph, x)
        # pop the pre-activations so each is freed as soon as its branch is computed (2 fewer
        # [N, hidden] tensors alive at the peak: ~2 GB at 2M nodes)
        h_a = self._dropout(parts.pop("s") + self.struct_bias).relu()
        h_x = self._dropout(parts.pop("xw") + self.feat.bias).relu()
        return self._head(h_a, h_x)[0]

    def forward_nodes(self, graph, x: torch.Tensor, nodes: torch.Tensor) -> ModelOutput:
        """Outputs on ``nodes`` only (int64 ``[B]``; mini-batch training and batched inference).

        Reads ``x[nodes]`` and the adjacency rows of ``nodes`` (no other node's
        rows), in train or eval mode; logits ``[B, C]`` and ``hidden = (H_A, H_X)``
        ``[B, hidden]``. In eval mode equal to ``forward(graph, x)`` restricted to ``nodes``.
        """
        return self.forward_parts(graph, x, nodes)[0]

    def online_forward(self, graph, x: torch.Tensor, nodes: torch.Tensor) -> ModelOutput:
        """Predict only ``nodes`` (int64 ``[B]``) from their feature rows and neighbour-id lists.

        ``x`` is the feature matrix of ``graph`` (``[N, F]``; only ``x[nodes]``
        is read); the adjacency CSR of ``graph`` is built on the first call
        and cached. Rows equal ``forward(graph, x).logits[nodes]`` in eval mode.
        ``= online_compute(*online_gather(graph, x, nodes))``: the two hooks
        :mod:`gkd_bench.timing` times separately for the ``online@B`` scenario
        (gathering B feature rows and B adjacency rows vs the computation).
        """
        return self.online_compute(*self.online_gather(graph, x, nodes))

    @contextlib.contextmanager
    def treat_all_as_unseen(self):
        """Within the block every node is unseen (predictor mode: ``g(x)`` for all; sa_mlp_ind stage 2)."""
        old = self.all_unseen
        self.all_unseen = True
        try:
            yield self
        finally:
            self.all_unseen = old


@MODELS.register("sa_mlp")
def sa_mlp(in_dim: int, num_classes: int, hidden: int = 128, dropout: float = 0.5, decoder_layers: int = 1,
           adj_norm: str = "none", self_loops: bool = False, unseen: str = "adjacency") -> SAMLP:
    """Factory for :class:`SAMLP`; keyword arguments are its hyperparameters."""
    return SAMLP(in_dim, num_classes, hidden, dropout, decoder_layers, adj_norm, self_loops, unseen)
