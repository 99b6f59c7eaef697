"""Graph attention network (Velickovic et al., ICLR 2018) on DGL's GATConv."""
from __future__ import annotations

import torch
from torch import nn

from gkd_bench.data import ModelOutput
from gkd_bench.methods._common import (InputDropout, activation, check_input_norm, check_layers,
                                       dense_input_grad_wanted, make_norm, normalize_input, pattern_matmul,
                                       sparse_input_values, weighted_sum, with_self_loops)
from gkd_bench.registry import MODELS


class GAT(nn.Module):
    """GATConv layers; hidden layers concatenate ``heads``, the output layer averages ``out_heads``.

    Shapes: ``x`` ``[N, in_dim]`` -> logits ``[N, num_classes]``; ``hidden`` holds
    ``num_layers - 1`` tensors ``[N, hidden * heads]`` (post-activation, before
    dropout). Velickovic's Cora setting: 2 layers, 8 heads x 8 hidden, ELU,
    dropout 0.6 on features and attention, lr 0.005, weight decay 5e-4.
    ``input_norm="l1"`` row-normalises the input features first, as Velickovic's
    preprocessing does (:func:`~gkd_bench.methods._common.normalize_input`; ``"l2"``: unit Euclidean rows).

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
    forces it, and so does ``residual="linear"``.

    Residual connections (``residual``):

    - ``False``: none.
    - ``True``: DGL's ``GATConv`` residual, the identity where a layer's input and output widths
      match, else a bias-carrying ``Linear(d_in, heads * d_out)`` added per head (on the output
      layer before the head mean).
    - ``"linear"``: a ``Linear`` skip on every layer, added after the head concatenation (hidden
      layers: ``Linear(d_in, heads * hidden)``) or after the head mean (output layer:
      ``Linear(d_in, num_classes)``): ``h_{l+1} = act(norm(concat_k GAT_k(h_l) + W_l h_l))``. This is the
      PyG form of the G-CRD reference (``ppi_pyg/gnn.py``: ``conv(x) + lin(x)``, a bias in both; with
      ``residual_bias=True`` the parameter counts equal the reference's: PPI teacher 3,076,766,
      5-layer student 176,846, 2-layer student 182,714) and of its ogbn-arxiv GAT
      (``arxiv_dgl/models.py``: a bias-free linear residual, ``residual_bias=False``). The output
      layer's own bias then has ``num_classes`` entries, added after the head mean, as PyG's
      ``concat=False`` bias.

    Attention variants of the ogbn-arxiv GAT of the G-CRD reference (``arxiv_dgl/models.py``, after
    Wang et al.'s "Bag of Tricks for Node Classification with GNNs" GAT; all off by default):

    - ``attn_dst=False``: no destination term, ``e_ij = LeakyReLU(a_l . W h_j)`` (the layers have no
      ``attn_r`` parameter; ``--no-attn-dst``).
    - ``symmetric_norm=True``: source features scaled by ``d_out(j)^-1/2``; the source score term
      ``a_l . z_j`` and the messages use the scaled features, the destination term ``a_r . W h_i``
      the unscaled ones; the sum is scaled by ``d_in(i)^+1/2`` before the residual and bias
      (``--use-norm``; degrees of the graph with self-loops, clamped at 1; the exponents are the
      reference code's).
    - ``edge_drop=p``: in training, a fresh random ``p`` of the edges is left out of every layer's
      edge softmax (weight 0; the softmax normalises over the kept edges; ``--edge-drop``).
    - ``conv_bias=False``: hidden layers' attention convolutions carry no bias (the reference's;
      with ``norm: batch`` a bias there is cancelled by the batch norm anyway).
    - ``skip_init="xavier"``: the ``residual: linear`` skips' weights drawn as the reference's
      ``res_fc`` (``xavier_normal_`` with ReLU gain, as DGL initialises ``fc``); default ``"torch"``:
      ``nn.Linear``'s own initialisation (the PPI reference's PyG ``Linear`` skips).

    Every layer runs :meth:`_attend`: DGL's ``GATConv.forward`` after its ``fc``, reproduced with the
    variants, whose weighted sum is :func:`~gkd_bench.methods._common.weighted_sum` (on CPU a torch CSR
    product equal to DGL's ``update_all`` bit for bit and ~2x faster; ``fast_aggregation=False``, a
    plain attribute, calls DGL's). The layers stay ``GATConv`` modules (parameters, initialisation).

    ``norm`` (``None`` | ``"batch"`` | ``"layer"``) normalises each hidden layer's concatenated heads
    before the activation (the ogbn-arxiv reference: BatchNorm1d). ``input_dropout`` is the dropout
    rate on the input features (default: ``dropout``, the rate between layers); the ogbn-arxiv
    reference uses 0.25 on the input and 0.75 between layers.

    Raises:
        ValueError: ``residual`` not one of ``False`` (or ``None``), ``True``, ``"linear"``; a bad ``norm``, ``act``,
            ``input_norm``, ``skip_init``, dropout or ``edge_drop`` rate or ``num_layers``.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 8, num_layers: int = 2,
                 heads: int = 8, out_heads: int = 1, dropout: float = 0.6, attn_dropout: float = 0.6,
                 negative_slope: float = 0.2, residual=False, act: str = "elu",
                 input_norm=None, norm=None, input_dropout=None, residual_bias: bool = True,
                 attn_dst: bool = True, symmetric_norm: bool = False, edge_drop: float = 0.0,
                 conv_bias: bool = True, skip_init: str = "torch"):
        super().__init__()
        if skip_init not in ("torch", "xavier"):
            raise ValueError(f"gat: skip_init must be 'torch' or 'xavier', got {skip_init!r}")
        if not 0.0 <= float(edge_drop) < 1.0:
            raise ValueError(f"gat: edge_drop must be in [0, 1), got {edge_drop!r}")
        check_input_norm(input_norm)
        self.input_norm = input_norm
        from dgl.nn import GATConv

        check_layers(num_layers)
        if residual is None:  # as before the option had its third value: no residual
            residual = False
        if residual not in (False, True, "linear"):
            raise ValueError(f"gat: residual must be false, true or 'linear'; got {residual!r}")
        linear_skip = residual == "linear"
        conv_residual = bool(residual) and not linear_skip
        self.act = activation(act)
        self.layers = nn.ModuleList()
        self.skips = nn.ModuleList() if linear_skip else None
        d = in_dim
        for _ in range(num_layers - 1):
            self.layers.append(GATConv(d, hidden, heads, feat_drop=0.0, attn_drop=attn_dropout,
                                       negative_slope=negative_slope, residual=conv_residual,
                                       bias=bool(conv_bias)))
            if linear_skip:
                self.skips.append(nn.Linear(d, hidden * heads, bias=residual_bias))
            d = hidden * heads
        self.layers.append(GATConv(d, num_classes, out_heads, feat_drop=0.0, attn_drop=attn_dropout,
                                   negative_slope=negative_slope, residual=conv_residual,
                                   bias=not linear_skip))
        if linear_skip:
            self.skips.append(nn.Linear(d, num_classes, bias=residual_bias))
            self.out_bias = nn.Parameter(torch.zeros(num_classes))  # PyG concat=False: one bias per class
        else:
            self.out_bias = None
        self.norms = nn.ModuleList(make_norm(norm, hidden * heads) for _ in range(num_layers - 1))
        self.dropout = nn.Dropout(dropout)
        # the input features' rate (default: the rate between layers), on their non-zero entries
        self.input_dropout = InputDropout(dropout if input_dropout is None else input_dropout)
        self.sparse_first_layer = True  # a plain attribute: not in the state_dict
        self.fast_aggregation = True  # weighted_sum's CPU path (False: DGL's update_all); not in the state_dict
        if linear_skip and skip_init == "xavier":
            for skip in self.skips:
                nn.init.xavier_normal_(skip.weight, gain=nn.init.calculate_gain("relu"))
        self.symmetric_norm = bool(symmetric_norm)
        self.edge_drop = float(edge_drop)
        if not attn_dst:
            for layer in self.layers:  # no destination term: no a_r parameter (the reference's count)
                del layer.attn_r
                layer.attn_r = None

    def _sparse_layer0(self, g, x):
        """``self.layers[0](g, dropout(l1(x)))`` ``[N, heads, out]`` from the non-zero entries of ``x``
        ``[N, in_dim]``, or ``None`` when the dense path applies. Mirrors DGL's ``GATConv.forward``
        for a homogeneous graph after its ``fc``; raises ``DGLError`` on 0-in-degree nodes as it does."""
        layer = self.layers[0]
        res_linear = isinstance(layer.res_fc, nn.Linear)
        if (not self.sparse_first_layer or type(self.input_dropout) is not InputDropout
                or self.skips is not None or dense_input_grad_wanted(x)
                or layer.feat_drop.p > 0 or hasattr(layer, "fc_src") or g.is_block
                or (layer.res_fc is not None and not res_linear)):
            return None
        hit = sparse_input_values(x, self.input_dropout.p, self.input_dropout.training, self.input_norm)
        if hit is None:
            return None
        heads, out = layer._num_heads, layer._out_feats
        weight = layer.fc.weight if not res_linear else torch.cat([layer.fc.weight, layer.res_fc.weight])
        proj = pattern_matmul(hit[0], hit[1], weight.t())
        res = None
        if res_linear:
            res = proj[:, heads * out:]
            if layer.res_fc.bias is not None:
                res = res + layer.res_fc.bias
            res = res.view(-1, heads, out)
        return self._attend(layer, g, proj[:, : heads * out].view(-1, heads, out), res)

    def _attend(self, layer, g, feat, res):
        """DGL's ``GATConv.forward`` after its ``fc``, with this model's attention variants.

        ``feat`` ``[N, heads, out]``: the layer's projected inputs ``fc(h)``; ``res``
        ``[N, heads, out]`` or ``None``: the layer's own residual term. Velickovic et al.'s
        scores ``LeakyReLU(a_l . W h_j + a_r . W h_i)``, edge softmax over each node's in-edges,
        attention dropout, weighted sum, residual, bias; variants as the class docstring
        (``attn_dst``, ``symmetric_norm``, ``edge_drop``). Without variants the output equals
        ``GATConv.forward`` up to float rounding.

        Returns:
            ``[N, heads, out]``.

        Raises:
            DGLError: 0-in-degree nodes, as ``GATConv`` does.
        """
        import dgl.function as fn
        from dgl.base import DGLError
        from dgl.nn.functional import edge_softmax

        with g.local_scope():
            if not layer._allow_zero_in_degree and (g.in_degrees() == 0).any():
                raise DGLError("There are 0-in-degree nodes in the graph, output for those nodes will be "
                               "invalid (GATConv); add self-loops or set allow_zero_in_degree")
            src = feat
            if self.symmetric_norm:
                src = feat * g.out_degrees().float().clamp(min=1).pow(-0.5).view(-1, 1, 1)
            el = (src * layer.attn_l).sum(dim=-1).unsqueeze(-1)
            g.srcdata["el"] = el
            if layer.attn_r is not None:
                g.dstdata.update({"er": (feat * layer.attn_r).sum(dim=-1).unsqueeze(-1)})
                g.apply_edges(fn.u_add_v("el", "er", "e"))
            else:
                g.apply_edges(fn.copy_u("el", "e"))
            e = layer.leaky_relu(g.edata.pop("e"))
            if self.training and self.edge_drop > 0:
                m = g.num_edges()
                kept = torch.randperm(m, device=e.device)[int(m * self.edge_drop):]
                a = torch.zeros_like(e)
                a[kept] = layer.attn_drop(edge_softmax(g, e[kept], eids=kept))
            else:
                a = layer.attn_drop(edge_softmax(g, e))
            rst = weighted_sum(g, src, a, fast=self.fast_aggregation)
            if self.symmetric_norm:
                rst = rst * g.in_degrees().float().clamp(min=1).pow(0.5).view(-1, 1, 1)
            if res is not None:
                rst = rst + res
            if layer.has_explicit_bias:
                rst = rst + layer.bias.view(1, layer._num_heads, layer._out_feats)
            if layer.activation:
                rst = layer.activation(rst)
            return rst

    def _layer(self, i: int, g, h):
        """Layer ``i`` on inputs ``h`` ``[N, d]``: its ``fc`` and residual, then :meth:`_attend` (equal to
        ``GATConv.forward`` without the variants). Returns ``[N, heads, out]``."""
        layer = self.layers[i]
        feat = layer.fc(layer.feat_drop(h)).view(-1, layer._num_heads, layer._out_feats)
        # DGL applies res_fc to feat_drop(h); this model always builds its layers with feat_drop 0
        res = None if layer.res_fc is None else layer.res_fc(h).view(-1, layer._num_heads, layer._out_feats)
        return self._attend(layer, g, feat, res)

    def forward(self, graph, x) -> ModelOutput:
        g = with_self_loops(graph)
        h0 = self._sparse_layer0(g, x)
        h = self.input_dropout(normalize_input(x, self.input_norm), support=x) if h0 is None else None
        hidden = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h_in = h if i == 0 else self.dropout(h)
            h = h0 if i == 0 and h0 is not None else self._layer(i, g, h_in)
            h = h.flatten(1) if i < last else h.mean(1)
            if self.skips is not None:
                h = h + self.skips[i](h_in)
            if i < last:
                h = self.act(self.norms[i](h))
                hidden.append(h)
            elif self.out_bias is not None:
                h = h + self.out_bias
        return ModelOutput(h, tuple(hidden))


@MODELS.register("gat")
def gat(in_dim: int, num_classes: int, hidden: int = 8, num_layers: int = 2, heads: int = 8,
        out_heads: int = 1, dropout: float = 0.6, attn_dropout: float = 0.6,
        negative_slope: float = 0.2, residual=False, act: str = "elu",
        input_norm=None, norm=None, input_dropout=None, residual_bias: bool = True,
        attn_dst: bool = True, symmetric_norm: bool = False, edge_drop: float = 0.0,
        conv_bias: bool = True, skip_init: str = "torch") -> GAT:
    """Factory for :class:`GAT`; keyword arguments are its hyperparameters."""
    return GAT(in_dim, num_classes, hidden, num_layers, heads, out_heads, dropout, attn_dropout,
               negative_slope, residual, act, input_norm, norm, input_dropout, residual_bias,
               attn_dst, symmetric_norm, edge_drop, conv_bias, skip_init)


# added after GAT records existed; at their defaults they stay out of config ids (gkd_bench.spec.ID_NEUTRAL_ATTR)
gat.id_neutral_defaults = ("norm", "input_dropout", "residual_bias", "attn_dst", "symmetric_norm", "edge_drop",
                           "conv_bias", "skip_init")
