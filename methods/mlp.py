"""Graph-free multi-layer perceptron: the student of GLNN (Zhang et al., ICLR 2022)."""
from __future__ import annotations

from torch import nn

from gkd_bench.data import ModelOutput
from gkd_bench.methods._common import InputDropout, check_layers, make_norm
from gkd_bench.registry import MODELS


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU, dropout and optional norm; ignores the graph.

    Shapes: ``x`` ``[N, in_dim]`` -> logits ``[N, num_classes]``; ``hidden`` holds
    the ``num_layers - 1`` post-activation hidden representations ``[N, hidden]``.
    GLNN sizes: 2 x 128 (Cora-scale), 3 x 256 and 3 x 1024 (ogbn-arxiv).
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

    def forward(self, graph, x) -> ModelOutput:
        h = self.input_dropout(x)
        hidden = []
        for i, layer in enumerate(self.layers):
            h = layer(h)
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
