"""Graph attention network (Velickovic et al., ICLR 2018) on DGL's GATConv."""
from __future__ import annotations

from torch import nn

from gkd_bench.data import ModelOutput
from gkd_bench.methods._common import (InputDropout, activation, check_input_norm, check_layers, normalize_input,
                                       with_self_loops)
from gkd_bench.registry import MODELS


class GAT(nn.Module):
    """GATConv layers; hidden layers concatenate ``heads``, the output layer averages ``out_heads``.

    Shapes: ``x`` ``[N, in_dim]`` -> logits ``[N, num_classes]``; ``hidden`` holds
    ``num_layers - 1`` tensors ``[N, hidden * heads]`` (post-activation, before
    dropout). Velickovic's Cora setting: 2 layers, 8 heads x 8 hidden, ELU,
    dropout 0.6 on features and attention, lr 0.005, weight decay 5e-4.
    ``input_norm="l1"`` row-normalises the input features first, as Velickovic's
    preprocessing does (:func:`~gkd_bench.methods._common.normalize_input`).
    """

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 8, num_layers: int = 2,
                 heads: int = 8, out_heads: int = 1, dropout: float = 0.6, attn_dropout: float = 0.6,
                 negative_slope: float = 0.2, residual: bool = False, act: str = "elu",
                 input_norm=None):
        super().__init__()
        check_input_norm(input_norm)
        self.input_norm = input_norm
        from dgl.nn import GATConv

        check_layers(num_layers)
        self.act = activation(act)
        self.layers = nn.ModuleList()
        d = in_dim
        for _ in range(num_layers - 1):
            self.layers.append(GATConv(d, hidden, heads, feat_drop=0.0, attn_drop=attn_dropout,
                                       negative_slope=negative_slope, residual=residual))
            d = hidden * heads
        self.layers.append(GATConv(d, num_classes, out_heads, feat_drop=0.0, attn_drop=attn_dropout,
                                   negative_slope=negative_slope, residual=residual))
        self.dropout = nn.Dropout(dropout)
        self.input_dropout = InputDropout(dropout)  # the same rate on the (sparse) input features

    def forward(self, graph, x) -> ModelOutput:
        g = with_self_loops(graph)
        h = self.input_dropout(normalize_input(x, self.input_norm), support=x)
        hidden = []
        for i, layer in enumerate(self.layers):
            h = layer(g, h if i == 0 else self.dropout(h))
            if i < len(self.layers) - 1:
                h = self.act(h.flatten(1))
                hidden.append(h)
            else:
                h = h.mean(1)
        return ModelOutput(h, tuple(hidden))


@MODELS.register("gat")
def gat(in_dim: int, num_classes: int, hidden: int = 8, num_layers: int = 2, heads: int = 8,
        out_heads: int = 1, dropout: float = 0.6, attn_dropout: float = 0.6,
        negative_slope: float = 0.2, residual: bool = False, act: str = "elu",
        input_norm=None) -> GAT:
    """Factory for :class:`GAT`; keyword arguments are its hyperparameters."""
    return GAT(in_dim, num_classes, hidden, num_layers, heads, out_heads, dropout, attn_dropout,
               negative_slope, residual, act, input_norm)
