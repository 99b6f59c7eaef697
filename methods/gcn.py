"""Graph convolutional network (Kipf & Welling, ICLR 2017) on DGL's GraphConv."""
from __future__ import annotations

from torch import nn

from gkd_bench.data import ModelOutput
from gkd_bench.methods._common import InputDropout, check_layers, make_norm, with_self_loops
from gkd_bench.registry import MODELS


class GCN(nn.Module):
    """GraphConv layers, symmetric normalisation D^-1/2 (A+I) D^-1/2, ReLU, dropout.

    Shapes: ``x`` ``[N, in_dim]`` -> logits ``[N, num_classes]``; ``hidden`` holds
    ``num_layers - 1`` tensors ``[N, hidden]`` (post-activation, before dropout).
    Kipf's Cora setting: 2 layers, hidden 16, dropout 0.5, weight decay 5e-4.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64, num_layers: int = 2,
                 dropout: float = 0.5, norm=None, input_dropout=None):
        super().__init__()
        from dgl.nn import GraphConv

        check_layers(num_layers)
        dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        self.layers = nn.ModuleList(GraphConv(a, b, norm="both") for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(make_norm(norm, hidden) for _ in range(num_layers - 1))
        self.dropout = nn.Dropout(dropout)
        # Kipf applies dropout to the (sparse) input features as well; default: same rate.
        self.input_dropout = InputDropout(dropout if input_dropout is None else input_dropout)

    def forward(self, graph, x) -> ModelOutput:
        g = with_self_loops(graph)
        h = self.input_dropout(x)
        hidden = []
        for i, layer in enumerate(self.layers):
            h = layer(g, h)
            if i < len(self.layers) - 1:
                h = self.norms[i](h).relu()
                hidden.append(h)
                h = self.dropout(h)
        return ModelOutput(h, tuple(hidden))


@MODELS.register("gcn")
def gcn(in_dim: int, num_classes: int, hidden: int = 64, num_layers: int = 2,
        dropout: float = 0.5, norm=None, input_dropout=None) -> GCN:
    """Factory for :class:`GCN`; keyword arguments are its hyperparameters."""
    return GCN(in_dim, num_classes, hidden, num_layers, dropout, norm, input_dropout)
