"""Pieces shared by the model files: normalisation layers and self-loop caching."""
from __future__ import annotations

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


INPUT_NORMS = (None, "none", False, "l1")


def check_input_norm(kind) -> None:
    """Raise ``ValueError`` unless ``kind`` is an input normalisation :func:`normalize_input` knows."""
    if kind not in INPUT_NORMS:
        raise ValueError(f"input_norm must be one of none, l1; got {kind!r}")


def normalize_input(x: torch.Tensor, kind) -> torch.Tensor:
    """Input preprocessing inside the model: ``None`` (identity) or ``"l1"`` row normalisation.

    ``"l1"`` divides each row of ``x`` ``[N, F]`` by its L1 norm (rows of zeros
    stay zero). For non-negative bag-of-words features this is the row
    normalisation of Kipf & Welling (ICLR 2017, ``preprocess_features``) and
    Velickovic et al. (ICLR 2018); using the absolute sum keeps it bounded when
    test-time noise makes entries negative. Living in the model, it is applied
    to whatever features the model sees, perturbed ones included.

    Raises:
        ValueError: for a kind other than ``None`` or ``"l1"``.
    """
    check_input_norm(kind)
    if kind == "l1":
        return nn.functional.normalize(x, p=1.0, dim=1)
    return x


def check_layers(num_layers: int) -> None:
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
    version (an in-place change recomputes; a freed tensor's entry is dropped)."""
    key = id(x)
    hit = _NONZERO_CACHE.get(key)
    if hit is not None:
        ref, version, shape, idx = hit
        if ref() is x and version == x._version and shape == x.shape:
            return idx
    flat = x.detach().reshape(-1)
    idx = torch.nonzero(flat, as_tuple=True)[0]
    if idx.numel() > SPARSE_DROPOUT_MAX_DENSITY * flat.numel():
        idx = None
    try:
        ref = weakref.ref(x, lambda _r, k=key: _NONZERO_CACHE.pop(k, None))
    except TypeError:  # not weak-referenceable: do not memoise
        return idx
    _NONZERO_CACHE[key] = (ref, x._version, x.shape, idx)
    return idx


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
