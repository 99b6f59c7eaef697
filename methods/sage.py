"""GraphSAGE (Hamilton et al., NeurIPS 2017) on DGL's SAGEConv; GLNN's teacher."""
from __future__ import annotations

from torch import nn

from gkd_bench.data import ModelOutput
from gkd_bench.methods._common import check_layers, make_norm
from gkd_bench.registry import MODELS


class SAGE(nn.Module):
    """SAGEConv layers (``aggregator`` mean by default), ReLU, dropout, optional norm.

    Shapes: ``x`` ``[N, in_dim]`` -> logits ``[N, num_classes]``; ``hidden`` holds
    ``num_layers - 1`` tensors ``[N, hidden]``. GLNN teacher: 2 layers,
    hidden 128, dropout 0, lr 0.01, weight decay 5e-4. ``fan_out`` is the
    neighbour-sampling fan-out used by mini-batch training and the
    ``online@B`` latency scenario (full-batch training ignores it).
    """

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, aggregator: str = "mean", norm=None, fan_out=None):
        super().__init__()
        from dgl.nn import SAGEConv

        check_layers(num_layers)
        dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        self.layers = nn.ModuleList(SAGEConv(a, b, aggregator) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(make_norm(norm, hidden) for _ in range(num_layers - 1))
        self.dropout = nn.Dropout(dropout)
        self.fan_out = list(fan_out) if fan_out else None

    def forward(self, graph, x) -> ModelOutput:
        h = x
        hidden = []
        for i, layer in enumerate(self.layers):
            h = layer(graph, h)
            if i < len(self.layers) - 1:
                h = self.norms[i](h).relu()
                hidden.append(h)
                h = self.dropout(h)
        return ModelOutput(h, tuple(hidden))


@MODELS.register("sage")
def sage(in_dim: int, num_classes: int, hidden: int = 128, num_layers: int = 2,
         dropout: float = 0.0, aggregator: str = "mean", norm=None, fan_out=None) -> SAGE:
    """Factory for :class:`SAGE`; keyword arguments are its hyperparameters."""
    return SAGE(in_dim, num_classes, hidden, num_layers, dropout, aggregator, norm, fan_out)
