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
