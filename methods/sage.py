"""GraphSAGE (Hamilton et al., NeurIPS 2017) on DGL's SAGEConv; GLNN's teacher."""
from __future__ import annotations

import torch
from torch import nn

from gkd_bench.data import ModelOutput
from gkd_bench.methods._common import (check_input_norm, check_layers, dense_input_grad_wanted, make_norm,
                                       normalize_input, sparse_input_matmul)
from gkd_bench.registry import MODELS


class SAGE(nn.Module):
    """SAGEConv layers (``aggregator`` mean by default), ReLU, dropout, optional norm.

    Shapes: ``x`` ``[N, in_dim]`` -> logits ``[N, num_classes]``; ``hidden`` holds
    ``num_layers - 1`` tensors ``[N, hidden]`` (post-activation, before dropout; after it with
    ``hidden_after_dropout=True``, as G-CRD's ``arxiv_pyg/gnn.py`` ``out_feat``). GLNN teacher: 2 layers,
    hidden 128, dropout 0, lr 0.01, weight decay 5e-4. ``fan_out`` is the
    neighbour-sampling fan-out (per layer, input layer first) used by
    mini-batch training (:mod:`gkd_bench.minibatch`) and the ``online@B``
    latency scenario (full-batch training ignores it).

    ``forward`` also accepts a list of DGL message-flow blocks, one per layer
    (mini-batch training): ``x`` is then ``[n_src, in_dim]`` for the first
    block's source nodes and the outputs are ``[n_dst, *]`` for the last
    block's destination nodes. :meth:`inference` is the layer-wise,
    bounded-memory equivalent of ``forward(graph, x)`` in eval mode.

    Sparse first layer (full-graph forward, ``mean`` and ``gcn`` aggregators): when at most
    :data:`~gkd_bench.methods._common.SPARSE_MATMUL_MAX_DENSITY` of ``x`` is non-zero (bag-of-words
    features), layer 0 computes ``x @ [W_neigh; W_self]^T`` from the non-zero entries only
    (:func:`~gkd_bench.methods._common.sparse_input_matmul`) and then aggregates exactly as DGL's
    ``SAGEConv`` does when it projects before message passing (its own choice whenever
    ``in_dim > out_dim``): ``mean``: ``x_i W_self^T + b + mean_{j in N(i)} x_j W_neigh^T``; ``gcn``:
    ``(sum_{j in N(i)} x_j W_neigh^T + x_i W_neigh^T) / (deg_i + 1) + b``. Same parameters, same
    outputs up to float rounding, no random numbers drawn (SAGE has no input dropout). Dense inputs,
    blocks (mini-batches), the ``pool``/``lstm`` aggregators, a ``SAGEConv`` with input dropout and
    an ``x`` that requires grad take DGL's dense path; ``sparse_first_layer = False`` forces it.

    ``input_norm="l1"`` row-normalises the input features inside the model
    (:func:`~gkd_bench.methods._common.normalize_input`: each row of ``x`` divided by its L1 norm, Kipf &
    Welling's ``preprocess_features``; ``"l2"``: by its Euclidean norm) on every path (sparse, dense,
    blocks, :meth:`inference`). On the Amazon sets' raw bag-of-words (35% of entries non-zero, ~260 ones
    per row) a 16-unit SAGE at lr 0.01 loses every ReLU unit within 5 Adam steps without it; the
    ``gcrd-available`` suite uses ``"l2"`` there (the suite file's header).

    Raises:
        ValueError: an unknown ``input_norm`` or ``norm``; ``num_layers`` < 1.
    """

    supports_blocks = True

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, aggregator: str = "mean", norm=None, fan_out=None,
                 hidden_after_dropout: bool = False, input_norm=None):
        super().__init__()
        check_input_norm(input_norm)
        self.input_norm = input_norm
        self.hidden_after_dropout = bool(hidden_after_dropout)
        from dgl.nn import SAGEConv

        check_layers(num_layers)
        dims = [in_dim] + [hidden] * (num_layers - 1) + [num_classes]
        self.layers = nn.ModuleList(SAGEConv(a, b, aggregator) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(make_norm(norm, hidden) for _ in range(num_layers - 1))
        self.dropout = nn.Dropout(dropout)
        self.fan_out = list(fan_out) if fan_out else None
        self.sparse_first_layer = True  # a plain attribute: not in the state_dict

    def _sparse_layer0(self, graph, x):
        """Layer 0 ``[N, hidden]`` from the non-zero entries of ``x`` ``[N, in_dim]``, or ``None``
        (dense input, or a case the sparse path does not cover: see the class docstring)."""
        layer = self.layers[0]
        agg = layer._aggre_type
        if (not self.sparse_first_layer or agg not in ("mean", "gcn") or layer.feat_drop.p > 0
                or dense_input_grad_wanted(x) or graph.num_edges() == 0):
            return None
        out = layer._out_feats
        weight = layer.fc_neigh.weight if agg == "gcn" else torch.cat([layer.fc_neigh.weight,
                                                                      layer.fc_self.weight])
        # [N, out] (gcn) or [N, 2 * out]: neighbour | self
        z = sparse_input_matmul(x, weight.t(), input_norm=self.input_norm)
        if z is None:
            return None
        import dgl.function as fn

        with graph.local_scope():
            graph.srcdata["h"] = z[:, :out]
            if agg == "mean":
                graph.update_all(fn.copy_u("h", "m"), fn.mean("m", "neigh"))
                h = z[:, out:] + graph.dstdata["neigh"]
                if layer.fc_self.bias is not None:
                    h = h + layer.fc_self.bias
            else:
                graph.update_all(fn.copy_u("h", "m"), fn.sum("m", "neigh"))
                degs = graph.in_degrees().to(z)
                h = (graph.dstdata["neigh"] + z[:, :out]) / (degs.unsqueeze(-1) + 1)
        bias = getattr(layer, "bias", None)  # gcn (DGL 1.x); every aggregator in DGL 2.x
        return h if not isinstance(bias, torch.Tensor) else h + bias

    def forward(self, graph, x) -> ModelOutput:
        blocks = graph if isinstance(graph, (list, tuple)) else None
        if blocks is not None and len(blocks) != len(self.layers):
            raise ValueError(f"sage: got {len(blocks)} blocks for {len(self.layers)} layers")
        h0 = self._sparse_layer0(graph, x) if blocks is None else None
        h = normalize_input(x, self.input_norm) if h0 is None else None
        hidden = []
        for i, layer in enumerate(self.layers):
            h = h0 if i == 0 and h0 is not None else layer(graph if blocks is None else blocks[i], h)
            if i < len(self.layers) - 1:
                h = self.norms[i](h).relu()
                dropped = self.dropout(h)
                hidden.append(dropped if self.hidden_after_dropout else h)
                h = dropped
        return ModelOutput(h, tuple(hidden))

    def inference(self, graph, x, batch_size: int = 16384, keep_hidden: bool = True) -> ModelOutput:
        """Layer-wise full-neighbourhood inference (eval mode: no dropout, norms' running statistics).

        Equals ``forward(graph, x)`` in eval mode up to float rounding; peak
        memory is one layer's output ``[N, hidden]`` plus one block of
        ``batch_size`` destination nodes and their in-neighbours
        (:func:`gkd_bench.minibatch.layerwise_inference`).

        Returns:
            ``ModelOutput`` with ``logits`` ``[N, num_classes]`` and ``hidden`` as ``forward``
            (``()`` when ``keep_hidden`` is false: then only two layers' outputs are alive at once).
        """
        from gkd_bench.minibatch import layerwise_inference

        return layerwise_inference(self.layers, lambda i, h: self.norms[i](h).relu(), graph,
                                   normalize_input(x, self.input_norm), batch_size, keep_hidden)


@MODELS.register("sage")
def sage(in_dim: int, num_classes: int, hidden: int = 128, num_layers: int = 2,
         dropout: float = 0.0, aggregator: str = "mean", norm=None, fan_out=None,
         hidden_after_dropout: bool = False, input_norm=None) -> SAGE:
    """Factory for :class:`SAGE`; keyword arguments are its hyperparameters."""
    return SAGE(in_dim, num_classes, hidden, num_layers, dropout, aggregator, norm, fan_out, hidden_after_dropout,
                input_norm)


# added after SAGE records existed; at its default it stays out of config ids (gkd_bench.spec.ID_NEUTRAL_ATTR)
sage.id_neutral_defaults = ("hidden_after_dropout", "input_norm")
