"""Graph attention network (Velickovic et al., ICLR 2018) on DGL's GATConv."""
from __future__ import annotations

import torch
from torch import nn

from gkd_bench.data import ModelOutput
from gkd_bench.methods._common import (InputDropout, activation, check_input_norm, check_layers,
                                       dense_input_grad_wanted, normalize_input, pattern_matmul,
                                       sparse_input_values, with_self_loops)
from gkd_bench.registry import MODELS


class GAT(nn.Module):
    """GATConv layers; hidden layers concatenate ``heads``, the output layer averages ``out_heads``.

    Shapes: ``x`` ``[N, in_dim]`` -> logits ``[N, num_classes]``; ``hidden`` holds
    ``num_layers - 1`` tensors ``[N, hidden * heads]`` (post-activation, before
    dropout). Velickovic's Cora setting: 2 layers, 8 heads x 8 hidden, ELU,
    dropout 0.6 on features and attention, lr 0.005, weight decay 5e-4.
    ``input_norm="l1"`` row-normalises the input features first, as Velickovic's
    preprocessing does (:func:`~gkd_bench.methods._common.normalize_input`).

    Sparse first layer: when at most
    :data:`~gkd_bench.methods._common.SPARSE_MATMUL_MAX_DENSITY` of ``x`` is non-zero (bag-of-words
    features), layer 0's projection ``fc(dropout(l1(x)))`` (and the residual ``res_fc`` of the same
    input, in the same sparse product) is computed from the non-zero entries only
    (:func:`~gkd_bench.methods._common.sparse_input_matmul`); the rest of ``GATConv.forward``
    (Velickovic et al.: ``a_l``/``a_r`` scores, LeakyReLU, edge softmax, attention dropout, weighted
    sum, residual, bias) is reproduced on DGL. Same parameters, same dropout masks (the global RNG
    is consumed as :class:`~gkd_bench.methods._common.InputDropout` does), same outputs up to float
    rounding. Denser inputs, an identity residual, ``feat_drop > 0`` or an ``x`` that requires grad
    (its gradient is dense also at the zero entries) take the dense path; ``sparse_first_layer=False``
    forces it.
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
        self.sparse_first_layer = True  # a plain attribute: not in the state_dict

    def _sparse_layer0(self, g, x):
        """``self.layers[0](g, dropout(l1(x)))`` ``[N, heads, out]`` from the non-zero entries of ``x``
        ``[N, in_dim]``, or ``None`` when the dense path applies. Mirrors DGL's ``GATConv.forward``
        for a homogeneous graph after its ``fc``; raises ``DGLError`` on 0-in-degree nodes as it does."""
        layer = self.layers[0]
        res_linear = isinstance(layer.res_fc, nn.Linear)
        if (not self.sparse_first_layer or type(self.input_dropout) is not InputDropout
                or dense_input_grad_wanted(x)
                or layer.feat_drop.p > 0 or hasattr(layer, "fc_src") or g.is_block
                or (layer.res_fc is not None and not res_linear)):
            return None
        hit = sparse_input_values(x, self.input_dropout.p, self.input_dropout.training, self.input_norm)
        if hit is None:
            return None
        import dgl.function as fn
        from dgl.base import DGLError
        from dgl.nn.functional import edge_softmax

        heads, out = layer._num_heads, layer._out_feats
        weight = layer.fc.weight if not res_linear else torch.cat([layer.fc.weight, layer.res_fc.weight])
        proj = pattern_matmul(hit[0], hit[1], weight.t())
        with g.local_scope():
            if not layer._allow_zero_in_degree and (g.in_degrees() == 0).any():
                raise DGLError("There are 0-in-degree nodes in the graph, output for those nodes will be "
                               "invalid (GATConv); add self-loops or set allow_zero_in_degree")
            feat = proj[:, : heads * out].view(-1, heads, out)
            el = (feat * layer.attn_l).sum(dim=-1).unsqueeze(-1)
            er = (feat * layer.attn_r).sum(dim=-1).unsqueeze(-1)
            g.srcdata.update({"ft": feat, "el": el})
            g.dstdata.update({"er": er})
            g.apply_edges(fn.u_add_v("el", "er", "e"))
            e = layer.leaky_relu(g.edata.pop("e"))
            g.edata["a"] = layer.attn_drop(edge_softmax(g, e))
            g.update_all(fn.u_mul_e("ft", "a", "m"), fn.sum("m", "ft"))
            rst = g.dstdata["ft"]
            if res_linear:
                res = proj[:, heads * out:]
                if layer.res_fc.bias is not None:
                    res = res + layer.res_fc.bias
                rst = rst + res.view(-1, heads, out)
            if layer.has_explicit_bias:
                rst = rst + layer.bias.view(1, heads, out)
            if layer.activation:
                rst = layer.activation(rst)
            return rst

    def forward(self, graph, x) -> ModelOutput:
        g = with_self_loops(graph)
        h0 = self._sparse_layer0(g, x)
        h = self.input_dropout(normalize_input(x, self.input_norm), support=x) if h0 is None else None
        hidden = []
        for i, layer in enumerate(self.layers):
            h = (layer(g, h) if h0 is None else h0) if i == 0 else layer(g, self.dropout(h))
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
