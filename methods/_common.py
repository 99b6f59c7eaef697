"""Pieces shared by the model files: normalisation layers and self-loop caching."""
from __future__ import annotations

import warnings
import weakref

import torch
from torch import nn

_SELF_LOOP_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def with_self_loops(graph):
    """``graph`` with exactly one self-loop per node, computed once per graph object.

    GCN and GAT need self-loops; datasets store graphs as their protocol
    defines them, so the models add them here. The result is memoised per
    graph object (weakly, so it is freed with the graph).
    """
    import dgl

    cached = _SELF_LOOP_CACHE.get(graph)
    if cached is None:
        cached = dgl.add_self_loop(dgl.remove_self_loop(graph))
        _SELF_LOOP_CACHE[graph] = cached
    return cached


_CSR_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _in_out_csr(graph):
    """DGL's own in-edge (CSC) and out-edge (CSR) adjacency of ``graph``: two ``(indptr, indices, eids)``
    triples in the order DGL's kernels visit edges (per row, ascending edge id), memoised per graph
    object (weakly, as :func:`with_self_loops`)."""
    cached = _CSR_CACHE.get(graph)
    if cached is None:
        cached = (graph.adj_tensors("csc"), graph.adj_tensors("csr"))
        _CSR_CACHE[graph] = cached
    return cached


def _per_head_spmm(adj, weights: torch.Tensor, feat: torch.Tensor, num_rows: int) -> torch.Tensor:
    """``out[i, h] = sum_{e in row i} weights[eid_e, h, 0] * feat[col_e, h]`` ``[num_rows, H, D]``: one
    CSR sparse-dense product per head over the ``(indptr, indices, eids)`` triple ``adj``."""
    indptr, indices, eids = adj
    heads = feat.shape[1]
    # one row per head in DGL's edge order; a 2-D index_select (not weights[eids]: 7x slower on [E, H, 1])
    w = weights.reshape(-1, heads).index_select(0, eids).t().contiguous()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.stack([torch.sparse_csr_tensor(indptr, indices, w[h], (num_rows, feat.shape[0]),
                                                    check_invariants=False) @ feat[:, h]
                            for h in range(heads)], 1)


class _WeightedSum(torch.autograd.Function):
    """:func:`weighted_sum` with DGL's ``GSpMM`` gradients: ``d feat`` is the same weighted sum over
    out-edges (DGL: ``gspmm`` on the reversed graph), ``d a`` is ``gsddmm(dot, feat_u, grad_v)``."""

    @staticmethod
    def forward(ctx, graph, feat, a):
        ctx.graph = graph
        ctx.save_for_backward(feat, a)
        return _per_head_spmm(_in_out_csr(graph)[0], a, feat, graph.num_dst_nodes())

    @staticmethod
    def backward(ctx, grad):
        import dgl

        feat, a = ctx.saved_tensors
        d_feat = d_a = None
        if ctx.needs_input_grad[1]:
            d_feat = _per_head_spmm(_in_out_csr(ctx.graph)[1], a, grad, feat.shape[0])
        if ctx.needs_input_grad[2]:
            d_a = dgl.ops.u_dot_v(ctx.graph, feat, grad)
        return None, d_feat, d_a


def weighted_sum(graph, feat: torch.Tensor, a: torch.Tensor, fast: bool = True) -> torch.Tensor:
    """GAT's message passing: ``out[i, h] = sum_{j -> i} a[e_ji, h] * feat[j, h]``, as DGL's
    ``update_all(fn.u_mul_e("ft", "a", "m"), fn.sum("m", "ft"))`` (``GATConv.forward``; Velickovic et
    al., ICLR 2018, eq. 4 before the non-linearity).

    On CPU, for a homogeneous graph (not a block), it runs one torch CSR sparse-dense product per head
    over DGL's own in-edge CSR (the edges of each row in DGL's order), and backward as DGL's ``GSpMM``
    does (the out-edge CSR for ``feat``, DGL's ``u_dot_v`` for ``a``). Values and gradients equal
    DGL's bit for bit with the pinned torch 2.13.0 CPU wheel and DGL 1.1.3 or 2.1.0 (1, 2 or 16 torch threads)
    (``tests/test_gat_options.py``); with torch 2.11.0+cu130 and DGL 2.1.0 on a 16-core Xeon those
    exact-equality tests failed by float rounding (their 12-node example, one thread: outputs up to
    4.8e-7 apart, relative 9.5e-6; ``feat``'s gradient 2.4e-7; ``a``'s gradient, DGL's ``u_dot_v`` on
    both paths, equal), so other builds may differ from DGL's kernel in the last bits. DGL's
    broadcasting ``u_mul_e`` kernel is ~2x slower on one thread (``benchmarks/gat_aggregation.py``).
    Any other case, or ``fast=False``, calls DGL.

    Args:
        graph: DGL graph, N source and M destination nodes, E edges.
        feat: ``[N, H, D]`` source features per head.
        a: ``[E, H, 1]`` edge weights (attention coefficients) in edge-id order.

    Returns:
        ``[M, H, D]``.

    Raises:
        ValueError: ``feat`` not ``[N, H, D]`` or ``a`` not ``[E, H, 1]``.
    """
    if feat.dim() != 3 or feat.shape[0] != graph.num_src_nodes():
        raise ValueError(f"weighted_sum: feat must be [{graph.num_src_nodes()}, H, D], got {tuple(feat.shape)}")
    if tuple(a.shape) != (graph.num_edges(), feat.shape[1], 1):
        raise ValueError(f"weighted_sum: a must be [{graph.num_edges()}, {feat.shape[1]}, 1], "
                         f"got {tuple(a.shape)}")
    if (fast and feat.device.type == "cpu" and a.device.type == "cpu" and not graph.is_block
            and graph.is_homogeneous and feat.dtype == a.dtype and feat.dtype in (torch.float32, torch.float64)):
        return _WeightedSum.apply(graph, feat, a)
    import dgl.function as fn

    with graph.local_scope():
        graph.srcdata["ft"] = feat
        graph.edata["a"] = a
        graph.update_all(fn.u_mul_e("ft", "a", "m"), fn.sum("m", "ft"))
        return graph.dstdata["ft"]


def make_norm(kind, dim: int) -> nn.Module:
    """``None`` -> Identity, ``"batch"`` -> BatchNorm1d, ``"layer"`` -> LayerNorm.

    Raises:
        ValueError: for any other value.
    """
    if kind in (None, "none", False):
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    if kind == "layer":
        return nn.LayerNorm(dim)
    raise ValueError(f"norm must be one of none, batch, layer; got {kind!r}")


INPUT_NORMS = (None, "none", False, "l1", "l2")
_INPUT_NORM_P = {"l1": 1.0, "l2": 2.0}


def check_input_norm(kind) -> None:
    """Raise ``ValueError`` unless ``kind`` is an input normalisation :func:`normalize_input` knows."""
    if kind not in INPUT_NORMS:
        raise ValueError(f"input_norm must be one of none, l1, l2; got {kind!r}")


def normalize_input(x: torch.Tensor, kind) -> torch.Tensor:
    """Input preprocessing inside the model: ``None`` (identity), ``"l1"`` or ``"l2"`` row normalisation.

    ``"l1"`` divides each row of ``x`` ``[N, F]`` by its L1 norm (rows of zeros
    stay zero). For non-negative bag-of-words features this is the row
    normalisation of Kipf & Welling (ICLR 2017, ``preprocess_features``) and
    Velickovic et al. (ICLR 2018); using the absolute sum keeps it bounded when
    test-time noise makes entries negative. ``"l2"`` divides each row by its
    Euclidean norm (unit-length rows, scikit-learn's ``normalize`` default): a
    binary row with ``n`` ones becomes ``1 / sqrt(n)`` where L1 gives ``1 / n``,
    so on dense bag-of-words (the Amazon sets: ~260 words per row) the first
    layer's input entries keep about the scale L1 gives them on Cora's ~18
    words per row (0.06 vs 0.056; per row, L2 norm 1 vs ~0.24). Living
    in the model, either is applied to whatever features the model sees,
    perturbed ones included.

    The result is memoised per kind, tensor object and version of ``x`` (as
    :func:`_flat_nonzero`; dropped when ``x`` is freed, recomputed after an
    in-place change of ``x`` or of the result): a full-batch model sees the same
    ``x`` every epoch, and on the Amazon sets' dense bag-of-words the
    normalisation costs about as much as the first layer's product. Not
    memoised when autograd records and ``x`` requires grad (the result must
    carry the graph), nor for inference tensors (no version counter).

    Raises:
        ValueError: for a kind other than ``None``, ``"l1"`` or ``"l2"``.
    """
    check_input_norm(kind)
    p = _INPUT_NORM_P.get(kind)
    if p is None:
        return x
    if dense_input_grad_wanted(x):
        return nn.functional.normalize(x, p=p, dim=1)
    cache = _INPUT_NORM_CACHE[kind]
    hit = _tensor_memo_get(cache, x)
    if hit is not None and hit[3]._version == hit[4]:
        return hit[3]
    out = nn.functional.normalize(x.detach(), p=p, dim=1)
    if not out.is_inference():  # made under torch.inference_mode: no version counter, not memoised
        _tensor_memo_put(cache, x, out, out._version)
    return out


# kind -> id(x) -> (weakref to x, x._version, x.shape, normalize_input(x, kind), its _version)
_INPUT_NORM_CACHE: dict = {kind: {} for kind in _INPUT_NORM_P}


def check_layers(num_layers: int) -> None:
    """Raises ``ValueError`` unless ``num_layers`` >= 1 (the GCN, GAT, SAGE and MLP constructors call it)."""
    if int(num_layers) < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def activation(name: str):
    """``relu`` | ``elu`` | ``gelu`` -> the torch function; ValueError otherwise."""
    table = {"relu": torch.relu, "elu": nn.functional.elu, "gelu": nn.functional.gelu}
    if name not in table:
        raise ValueError(f"activation must be one of {sorted(table)}; got {name!r}")
    return table[name]


#: ``InputDropout`` draws its mask on the non-zero entries only when at most this fraction is non-zero
SPARSE_DROPOUT_MAX_DENSITY = 0.5
_NONZERO_CACHE: dict = {}


def _flat_nonzero(x: torch.Tensor):
    """Flat indices of the non-zero entries of ``x`` ``[N, F]`` (int64 ``[nnz]``), or ``None`` when more
    than :data:`SPARSE_DROPOUT_MAX_DENSITY` of them are non-zero. Memoised per tensor object and
    version (an in-place change recomputes; a freed tensor's entry is dropped); inference tensors, which
    have no version counter, are not memoised."""
    hit = _tensor_memo_get(_NONZERO_CACHE, x)
    if hit is not None:
        return hit[3]
    flat = x.detach().reshape(-1)
    # count first: a dense input (noisy features, say) then never allocates an index of every entry
    if int(torch.count_nonzero(flat)) > SPARSE_DROPOUT_MAX_DENSITY * flat.numel():
        idx = None
    else:
        idx = torch.nonzero(flat, as_tuple=True)[0]
    _tensor_memo_put(_NONZERO_CACHE, x, idx)  # sparse_pattern may append the pattern
    return idx


def _tensor_memo_get(cache: dict, x: torch.Tensor):
    """The entry ``(weakref, version, shape, *values)`` that :func:`_tensor_memo_put` stored for this very
    tensor object ``x`` at its current version and shape, or ``None`` (always for an inference tensor,
    which has no version counter and is never memoised)."""
    if x.is_inference():
        return None
    hit = cache.get(id(x))
    if hit is not None and hit[0]() is x and hit[1] == x._version and hit[2] == x.shape:
        return hit
    return None


def _tensor_memo_put(cache: dict, x: torch.Tensor, *values) -> None:
    """Memoise ``values`` for ``x`` in ``cache`` (keyed by ``id(x)``, valid for its current version); the
    entry is dropped when ``x`` is freed. Inference tensors (no version counter) and tensors that cannot
    be weakly referenced are not memoised, nor are ``values`` made under ``torch.inference_mode``
    (inference tensors: autograd cannot save them for a later training step)."""
    if x.is_inference() or any(isinstance(v, torch.Tensor) and v.is_inference() for v in values):
        return
    key = id(x)
    try:
        ref = weakref.ref(x, lambda _r, k=key: cache.pop(k, None))
    except TypeError:
        return
    cache[key] = (ref, x._version, x.shape) + values


class InputDropout(nn.Module):
    """Dropout for sparse input features (Kipf & Welling's ``sparse_dropout``, ICLR 2017 code).

    Same distribution as ``nn.Dropout(p)``: every entry is zeroed with
    probability ``p`` and the kept ones are scaled by ``1 / (1 - p)``. Zeros stay
    zero whether dropped or kept, so only the non-zero entries need a random
    draw: for bag-of-words features (0.5-1% non-zero on Cora, CiteSeer,
    Coauthor-CS) that is 100-200x fewer draws than a dense mask, which
    dominates a GCN/GAT epoch on CPU. Dense inputs (more than
    :data:`SPARSE_DROPOUT_MAX_DENSITY` non-zero) use ``F.dropout``. The random
    stream differs from ``nn.Dropout`` on sparse inputs (same distribution,
    other masks).

    ``forward(x, support=None)``: ``x`` ``[N, F]``; ``support`` (default ``x``)
    is a tensor with the same shape whose non-zero pattern contains ``x``'s,
    e.g. the raw features when ``x`` is their row normalisation: its non-zero
    index is memoised per tensor, so a new ``x`` every step costs no scan.
    Gradients flow to ``x`` as through ``nn.Dropout``.

    Raises:
        ValueError: ``p`` outside ``[0, 1)``.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor, support: "torch.Tensor | None" = None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        idx = _flat_nonzero(x if support is None else support)
        if idx is None:
            return nn.functional.dropout(x, self.p, True)
        keep = torch.empty(idx.shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)
        out = torch.zeros_like(x).reshape(-1)
        out = out.index_put((idx,), x.reshape(-1)[idx] * keep.div_(1.0 - self.p))
        return out.view_as(x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


#: :func:`sparse_input_matmul` multiplies from the non-zero entries only when at most this fraction of
#: the input is non-zero (measured on one CPU thread: the sparse kernel loses to a dense GEMM well
#: below :data:`SPARSE_DROPOUT_MAX_DENSITY`; bag-of-words features are 0.5-1.3% non-zero).
SPARSE_MATMUL_MAX_DENSITY = 0.1
#: :func:`sparse_linear` (graph-free encoders: MLP, SA-MLP's feature encoder) keeps inputs of fewer rows
#: dense: for the few rows of online inference, building the non-zero index costs more than the product
#: saves (coauthor-cs, 6805 -> 128, one thread: 1 row 0.14 ms dense vs 0.77 ms sparse; 10 rows 0.69 vs
#: 0.77; 1024 rows 102 vs 71).
SPARSE_MIN_ROWS = 1024


class SparsePattern:
    """CSR structure of a fixed non-zero pattern of an ``[N, F]`` matrix and of its transpose.

    Built from the sorted flat index ``idx`` (int64 ``[nnz]``) of :func:`_flat_nonzero`: ``rows``,
    ``cols`` ``[nnz]``; ``crow`` ``[N + 1]``; ``perm`` ``[nnz]`` sorts the entries by column
    (stable), ``crow_t`` ``[F + 1]`` and ``cols_t = rows[perm]`` are the CSR structure of the
    ``[F, N]`` transpose (values ``values[perm]``). ``memo`` holds, once :func:`sparse_input_values`
    has gathered them, the source tensor's own values ``[nnz]`` and their transposed order (see
    :func:`_own_values`).
    """

    __slots__ = ("shape", "idx", "rows", "cols", "crow", "perm", "crow_t", "cols_t", "memo")

    def __init__(self, idx: torch.Tensor, shape):
        n, f = int(shape[0]), int(shape[1])
        self.shape = (n, f)
        self.idx = idx
        self.rows = torch.div(idx, f, rounding_mode="floor")
        self.cols = idx - self.rows * f
        self.crow = torch.zeros(n + 1, dtype=torch.int64, device=idx.device)
        self.crow[1:] = torch.bincount(self.rows, minlength=n).cumsum(0)
        self.perm = torch.argsort(self.cols, stable=True)
        self.crow_t = torch.zeros(f + 1, dtype=torch.int64, device=idx.device)
        self.crow_t[1:] = torch.bincount(self.cols, minlength=f).cumsum(0)
        self.cols_t = self.rows[self.perm]
        self.memo = None  # (values [nnz], values[perm] [nnz]), filled by _own_values


def sparse_pattern(x: torch.Tensor, max_density: "float | None" = None):
    """:class:`SparsePattern` of the non-zero entries of ``x`` ``[N, F]``, or ``None`` when more than
    ``max_density`` (default :data:`SPARSE_MATMUL_MAX_DENSITY`) of them are non-zero (or ``x`` is not
    2-D). Memoised with ``x``'s non-zero index (:func:`_flat_nonzero`: per tensor object and version),
    in the same cache entry, so both are dropped when ``x`` is freed: a stream of fresh inputs (online
    inference, mini-batches) leaves nothing behind."""
    if x.dim() != 2:
        return None
    if max_density is None:
        max_density = SPARSE_MATMUL_MAX_DENSITY
    idx = _flat_nonzero(x)
    if idx is None or idx.numel() > max_density * x.numel():
        return None
    key = id(x)
    hit = _NONZERO_CACHE.get(key)
    memoised = hit is not None and hit[0]() is x and hit[3] is idx
    if memoised and len(hit) > 4:
        return hit[4]
    pattern = SparsePattern(idx, x.shape)
    if memoised:
        _NONZERO_CACHE[key] = hit[:4] + (pattern,)
    return pattern


class _PatternMatmul(torch.autograd.Function):
    """``A @ W`` for ``A`` given by a :class:`SparsePattern` and its ``values`` ``[nnz]``; ``W`` ``[F, d]``.

    Forward and the weight gradient ``A^T @ grad`` are CSR sparse-dense products (the transpose's
    structure is precomputed in the pattern); the values' gradient is ``(grad[rows] * W[cols]).sum(1)``,
    computed only when the values require it.
    """

    @staticmethod
    def forward(ctx, values, weight, pattern):
        ctx.pattern = pattern
        ctx.own_values = pattern.memo is not None and pattern.memo[0] is values  # values[perm] memoised too
        ctx.save_for_backward(values, weight)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            a = torch.sparse_csr_tensor(pattern.crow, pattern.cols, values, pattern.shape, check_invariants=False)
        return a @ weight

    @staticmethod
    def backward(ctx, grad):
        values, weight = ctx.saved_tensors
        p = ctx.pattern
        grad_values = grad_weight = None
        if ctx.needs_input_grad[1]:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                values_t = p.memo[1] if ctx.own_values else values[p.perm]
                at = torch.sparse_csr_tensor(p.crow_t, p.cols_t, values_t, (p.shape[1], p.shape[0]),
                                              check_invariants=False)
            grad_weight = at @ grad.contiguous()
        if ctx.needs_input_grad[0]:
            grad_values = (grad[p.rows] * weight[p.cols]).sum(1)
        return grad_values, grad_weight, None


def sparse_input_values(x: torch.Tensor, p: float = 0.0, training: bool = False, input_norm=None,
                        support: "torch.Tensor | None" = None):
    """The non-zero entries of ``dropout(normalize_input(x, input_norm))``, or ``None`` (dense input).

    Returns ``(pattern, values)``: the :class:`SparsePattern` of ``support`` (default ``x``, ``[N, F]``,
    whose non-zero pattern must contain ``x``'s) and ``values`` ``[nnz]``: ``x`` at those entries, row
    L1-normalised when ``input_norm == "l1"`` (the row sums of absolute values over the non-zeros, as
    :func:`normalize_input`), L2-normalised when ``"l2"`` (square root of the row sums of squares),
    times a Bernoulli(``1 - p``) keep mask / ``(1 - p)`` when ``training`` and ``p > 0``. The mask is
    drawn exactly as :class:`InputDropout` draws it (one ``bernoulli_`` over the ``nnz`` values of the
    same index), so the global RNG advances identically and the kept entries are the same. ``None``
    when ``support`` is denser than :data:`SPARSE_MATMUL_MAX_DENSITY`. Gradients flow to ``x`` when it
    requires them; otherwise ``x``'s own entries (no ``support``, or ``support is x``) are gathered
    once per tensor version (:func:`_own_values`).

    Raises:
        ValueError: ``p`` outside ``[0, 1)`` or an unknown ``input_norm``; ``support`` of another shape.
    """
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    check_input_norm(input_norm)
    if support is not None and support.shape != x.shape:
        raise ValueError(f"support shape {tuple(support.shape)} != x shape {tuple(x.shape)}")
    pattern = sparse_pattern(x if support is None else support)
    if pattern is None:
        return None
    own = (support is None or support is x) and not dense_input_grad_wanted(x)
    values = _own_values(x, pattern) if own else x.reshape(-1)[pattern.idx]
    if input_norm in _INPUT_NORM_P:
        norm = torch.zeros(pattern.shape[0], dtype=values.dtype, device=values.device)
        if input_norm == "l1":
            norm = norm.index_add(0, pattern.rows, values.abs()).clamp_min(1e-12)  # F.normalize's eps
        else:  # max(sqrt(s), eps) as sqrt(max(s, eps^2)): no infinite gradient at an all-zero row
            norm = norm.index_add(0, pattern.rows, values * values).clamp_min(1e-24).sqrt()
        values = values / norm[pattern.rows]
    if training and p > 0.0:
        keep = torch.empty(values.shape, dtype=values.dtype, device=values.device).bernoulli_(1.0 - p)
        values = values * keep.div_(1.0 - p)
    return pattern, values


def _own_values(x: torch.Tensor, pattern: SparsePattern) -> torch.Tensor:
    """``x``'s entries at ``pattern.idx`` ``[nnz]`` (detached), for the pattern of ``x`` itself, memoised
    on the pattern. :func:`sparse_pattern` memoises the pattern per tensor object and version, so an
    in-place change of ``x`` gives a new pattern (and a new gather). The gather of ~1.1M scattered
    entries costs 20-30 ms per forward on coauthor-cs (one thread); a full-batch model reads the same
    ``x`` every epoch; the transposed order ``values[perm]`` (the weight gradient's) is kept with them.
    Callers ensure no gradient is wanted for ``x``."""
    if pattern.memo is None:
        values = x.detach().reshape(-1)[pattern.idx]
        pattern.memo = (values, values[pattern.perm])
    return pattern.memo[0]


def pattern_matmul(pattern: SparsePattern, values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``A @ weight`` ``[N, d]`` for the sparse ``A`` ``[N, F]`` given by ``pattern`` and ``values``
    ``[nnz]``; ``weight`` ``[F, d]``. Autograd to ``weight`` and ``values``.

    Raises:
        ValueError: ``weight`` not ``[F, d]`` or ``values`` not ``[nnz]``.
    """
    if weight.dim() != 2 or weight.shape[0] != pattern.shape[1]:
        raise ValueError(f"weight must be [{pattern.shape[1]}, d], got {tuple(weight.shape)}")
    if values.shape != pattern.idx.shape:
        raise ValueError(f"values must be [{pattern.idx.numel()}], got {tuple(values.shape)}")
    return _PatternMatmul.apply(values, weight, pattern)


def sparse_input_matmul(x: torch.Tensor, weight: torch.Tensor, p: float = 0.0, training: bool = False,
                        input_norm=None, support: "torch.Tensor | None" = None):
    """``dropout(normalize_input(x, input_norm)) @ weight`` from the non-zero entries of ``x`` only.

    Kipf & Welling's GCN code (ICLR 2017) keeps the bag-of-words features sparse: ``sparse_dropout``
    on the non-zero values, then ``tf.sparse_tensor_dense_matmul`` with the first weight matrix;
    Velickovic et al.'s GAT (ICLR 2018) applies the same first projection. ``x`` ``[N, F]``,
    ``weight`` ``[F, d]`` -> ``[N, d]``; ``p``, ``training``, ``input_norm``, ``support`` as in
    :func:`sparse_input_values` (the dropout mask equals :class:`InputDropout`'s for the same RNG
    state). The product is a CSR sparse-dense matmul in both directions (the fastest of COO
    ``torch.sparse.mm``, CSR, ``index_add_`` and ``embedding_bag`` measured on Coauthor-CS-sized
    data, one CPU thread). Returns ``None`` when ``x`` (``support``) is denser than
    :data:`SPARSE_MATMUL_MAX_DENSITY`: the caller then takes the dense path.

    Raises:
        ValueError: as :func:`sparse_input_values` and :func:`pattern_matmul`.
    """
    hit = sparse_input_values(x, p, training, input_norm, support)
    if hit is None:
        return None
    return pattern_matmul(hit[0], hit[1], weight)


def dense_input_grad_wanted(x: torch.Tensor) -> bool:
    """True when autograd records and ``x`` requires grad: its gradient is dense (also at the zero
    entries), so a model's sparse first layer must step aside for the dense one."""
    return torch.is_grad_enabled() and x.requires_grad


def sparse_linear(x: torch.Tensor, weight: torch.Tensor, p: float = 0.0, training: bool = False):
    """``dropout(x) @ weight^T`` ``[N, d]`` from the non-zero entries of ``x`` ``[N, F]``, or ``None``.

    The first layer of a graph-free encoder (``weight`` ``[d, F]`` as ``nn.Linear`` stores it, bias
    not added) computed as :func:`sparse_input_matmul` does, with the dropout mask
    :class:`InputDropout` would draw. ``None`` (the caller takes its dense path) when ``x`` has fewer
    than :data:`SPARSE_MIN_ROWS` rows, is denser than :data:`SPARSE_MATMUL_MAX_DENSITY`, or
    requires grad while autograd records (its gradient is dense also at the zero entries).

    Raises:
        ValueError: as :func:`sparse_input_matmul`.
    """
    if x.dim() != 2 or x.shape[0] < SPARSE_MIN_ROWS or dense_input_grad_wanted(x):
        return None
    return sparse_input_matmul(x, weight.t(), p, training)
