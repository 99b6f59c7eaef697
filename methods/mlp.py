"""Graph-free multi-layer perceptron: the student of GLNN (Zhang et al., ICLR 2022)."""
from __future__ import annotations

from torch import nn

from gkd_bench.data import ModelOutput
from gkd_bench.methods._common import InputDropout, check_layers, make_norm, sparse_linear
from gkd_bench.registry import MODELS


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU, dropout and optional norm; ignores the graph.

    Shapes: ``x`` ``[N, in_dim]`` -> logits ``[N, num_classes]``; ``hidden`` holds
    the ``num_layers - 1`` post-activation hidden representations ``[N, hidden]``.
    GLNN sizes: 2 x 128 (Cora-scale), 3 x 256 and 3 x 1024 (ogbn-arxiv).

    Sparse first layer: bag-of-words inputs of at least
    :data:`~gkd_bench.methods._common.SPARSE_MIN_ROWS` rows multiply from their non-zero entries
    (:func:`~gkd_bench.methods._common.sparse_linear`), with the same input-dropout mask, the same
    parameters and the same outputs up to float rounding; ``sparse_first_layer = False`` forces the
    dense path (also taken by denser inputs, few rows, and an ``x`` that requires grad).
    """

    graph_free = True

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, norm=None, input_dropout: float = 0.0):
        super().__init__()
        check_layers(num_layers)
        dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(make_norm(norm, hidden) for _ in range(num_layers - 1))
        self.dropout = nn.Dropout(dropout)
        self.input_dropout = InputDropout(input_dropout)
        self.sparse_first_layer = True  # a plain attribute: not in the state_dict

    def _sparse_layer0(self, x):
        """``layers[0](input_dropout(x))`` ``[N, d]`` from the non-zeros of ``x``, or ``None`` (dense path)."""
        if not self.sparse_first_layer or type(self.input_dropout) is not InputDropout:
            return None
        layer = self.layers[0]
        xw = sparse_linear(x, layer.weight, self.input_dropout.p, self.input_dropout.training)
        return None if xw is None else xw + layer.bias

    def forward(self, graph, x) -> ModelOutput:
        h0 = self._sparse_layer0(x)
        h = self.input_dropout(x) if h0 is None else None
        hidden = []
        for i, layer in enumerate(self.layers):
            h = h0 if i == 0 and h0 is not None else layer(h)
            if i < len(self.layers) - 1:
                h = self.norms[i](h).relu()
                hidden.append(h)
                h = self.dropout(h)
        return ModelOutput(h, tuple(hidden))


@MODELS.register("mlp")
def mlp(in_dim: int, num_classes: int, hidden: int = 128, num_layers: int = 2,
        dropout: float = 0.0, norm=None, input_dropout: float = 0.0) -> MLP:
    """Factory for :class:`MLP`; keyword arguments are its hyperparameters."""
    return MLP(in_dim, num_classes, hidden, num_layers, dropout, norm, input_dropout)
