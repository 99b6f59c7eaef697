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
    neighbour-sampling fan-out (per layer, input layer first) used by
    mini-batch training (:mod:`gkd_bench.minibatch`) and the ``online@B``
    latency scenario (full-batch training ignores it).

    ``forward`` also accepts a list of DGL message-flow blocks, one per layer
    (mini-batch training): ``x`` is then ``[n_src, in_dim]`` for the first
    block's source nodes and the outputs are ``[n_dst, *]`` for the last
    block's destination nodes. :meth:`inference` is the layer-wise,
    bounded-memory equivalent of ``forward(graph, x)`` in eval mode.
    """

    supports_blocks = True

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
        blocks = graph if isinstance(graph, (list, tuple)) else None
        if blocks is not None and len(blocks) != len(self.layers):
            raise ValueError(f"sage: got {len(blocks)} blocks for {len(self.layers)} layers")
        h = x
        hidden = []
        for i, layer in enumerate(self.layers):
            h = layer(graph if blocks is None else blocks[i], h)
            if i < len(self.layers) - 1:
                h = self.norms[i](h).relu()
                hidden.append(h)
                h = self.dropout(h)
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

        return layerwise_inference(self.layers, lambda i, h: self.norms[i](h).relu(), graph, x, batch_size,
                                   keep_hidden)


@MODELS.register("sage")
def sage(in_dim: int, num_classes: int, hidden: int = 128, num_layers: int = 2,
         dropout: float = 0.0, aggregator: str = "mean", norm=None, fan_out=None) -> SAGE:
    """Factory for :class:`SAGE`; keyword arguments are its hyperparameters."""
    return SAGE(in_dim, num_classes, hidden, num_layers, dropout, aggregator, norm, fan_out)
