"""Graph convolutional network (Kipf & Welling, ICLR 2017) on DGL's GraphConv."""
from __future__ import annotations

from torch import nn

from gkd_bench.data import ModelOutput
from gkd_bench.methods._common import (InputDropout, check_input_norm, check_layers, dense_input_grad_wanted,
                                       make_norm, normalize_input, sparse_input_matmul, with_self_loops)
from gkd_bench.registry import MODELS

_PROPAGATE = None


def _propagate():
    """A parameterless ``GraphConv(norm="both", weight=False, bias=False)``: ``D_dst^-1/2 A D_src^-1/2 h``.

    Shared by all models (it holds no state), so it is not a submodule and the state_dict is unchanged.
    """
    global _PROPAGATE
    if _PROPAGATE is None:
        from dgl.nn import GraphConv

        _PROPAGATE = GraphConv(1, 1, norm="both", weight=False, bias=False)
    return _PROPAGATE


class GCN(nn.Module):
    """GraphConv layers, symmetric normalisation D^-1/2 (A+I) D^-1/2, ReLU, dropout.

    Shapes: ``x`` ``[N, in_dim]`` -> logits ``[N, num_classes]``; ``hidden`` holds
    ``num_layers - 1`` tensors ``[N, hidden]`` (post-activation, before dropout; after it with
    ``hidden_after_dropout=True``, what G-CRD's reference distils: ``arxiv_pyg/gnn.py`` sets
    ``out_feat`` after ``F.dropout``; the same in eval mode, where dropout is the identity).
    Kipf's Cora setting: 2 layers, hidden 16, dropout 0.5, weight decay 5e-4.

    Sparse first layer: when at most
    :data:`~gkd_bench.methods._common.SPARSE_MATMUL_MAX_DENSITY` of ``x`` is non-zero (bag-of-words
    features), layer 0 computes ``dropout(x) @ W0`` from the non-zero entries only
    (:func:`~gkd_bench.methods._common.sparse_input_matmul`, as Kipf & Welling's code does with
    ``sparse_dropout`` and a sparse-dense matmul) and then propagates exactly as
    ``GraphConv(norm="both")``: ``D_dst^-1/2 A D_src^-1/2 (X W0) + b0`` (the row scalings commute
    with the right product). Same parameters, same dropout masks (the global RNG is consumed as
    :class:`~gkd_bench.methods._common.InputDropout` does), same outputs up to float rounding; denser
    inputs, and an ``x`` that requires grad (its gradient is dense also at the zero entries), take
    the dense ``InputDropout`` + ``GraphConv`` path. ``sparse_first_layer=False`` forces the dense path.

    ``input_norm="l1"`` row-normalises the input features inside the model
    (:func:`~gkd_bench.methods._common.normalize_input`, Kipf & Welling's ``preprocess_features``;
    ``"l2"``: unit Euclidean rows) before input dropout, on both paths; dropout then draws its mask over
    the non-zero entries of the raw ``x`` (the same entries), so the sparse and dense paths still agree.
    The ``gcrd-available`` suite uses ``"l2"`` on the Amazon sets, whose raw bag-of-words (35% non-zero)
    kill the 16 ReLU units of some seeds (its header).

    Raises:
        ValueError: an unknown ``input_norm`` or ``norm``; ``num_layers`` < 1; dropout outside [0, 1).
    """

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64, num_layers: int = 2,
                 dropout: float = 0.5, norm=None, input_dropout=None, hidden_after_dropout: bool = False,
                 input_norm=None):
        super().__init__()
        check_input_norm(input_norm)
        self.input_norm = input_norm
        self.hidden_after_dropout = bool(hidden_after_dropout)
        from dgl.nn import GraphConv

        check_layers(num_layers)
        dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        self.layers = nn.ModuleList(GraphConv(a, b, norm="both") for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(make_norm(norm, hidden) for _ in range(num_layers - 1))
        self.dropout = nn.Dropout(dropout)
        # Kipf applies dropout to the (sparse) input features as well; default: same rate.
        self.input_dropout = InputDropout(dropout if input_dropout is None else input_dropout)
        self.sparse_first_layer = True  # a plain attribute: not in the state_dict

    def _sparse_layer0(self, g, x):
        """Layer 0 from the non-zero entries of ``x`` ``[N, in_dim]``, or ``None`` (dense input)."""
        if (not self.sparse_first_layer or type(self.input_dropout) is not InputDropout
                or dense_input_grad_wanted(x)):
            return None
        layer = self.layers[0]
        xw = sparse_input_matmul(x, layer.weight, self.input_dropout.p, self.input_dropout.training,
                                 input_norm=self.input_norm)
        if xw is None:
            return None
        h = _propagate()(g, xw)
        return h if layer.bias is None else h + layer.bias

    def forward(self, graph, x) -> ModelOutput:
        g = with_self_loops(graph)
        h0 = self._sparse_layer0(g, x)
        h = self.input_dropout(normalize_input(x, self.input_norm), support=x) if h0 is None else None
        hidden = []
        for i, layer in enumerate(self.layers):
            h = layer(g, h) if i or h0 is None else h0
            if i < len(self.layers) - 1:
                h = self.norms[i](h).relu()
                dropped = self.dropout(h)
                hidden.append(dropped if self.hidden_after_dropout else h)
                h = dropped
        return ModelOutput(h, tuple(hidden))


@MODELS.register("gcn")
def gcn(in_dim: int, num_classes: int, hidden: int = 64, num_layers: int = 2,
        dropout: float = 0.5, norm=None, input_dropout=None, hidden_after_dropout: bool = False,
        input_norm=None) -> GCN:
    """Factory for :class:`GCN`; keyword arguments are its hyperparameters."""
    return GCN(in_dim, num_classes, hidden, num_layers, dropout, norm, input_dropout, hidden_after_dropout,
               input_norm)


# added after GCN records existed; at their defaults they stay out of config ids (gkd_bench.spec.ID_NEUTRAL_ATTR)
gcn.id_neutral_defaults = ("hidden_after_dropout", "input_norm")
