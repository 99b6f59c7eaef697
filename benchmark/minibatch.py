"""Mini-batch training and bounded-memory inference for large graphs (issue 9).

The one training loop (:func:`gkd_bench.fit.fit`) asks this module for an
epoch's batches when a run trains in mini-batches, and for predictions when
it evaluates; nothing else changes. What a mini-batch is depends on the model:

- **sampled GNN** (model class attribute ``supports_blocks = True``, e.g.
  :class:`~gkd_bench.methods.sage.SAGE`): DGL's ``NeighborSampler`` draws,
  for a batch of seed nodes, ``fan_out[l]`` in-neighbours per node and layer
  (the Hamilton et al. GraphSAGE recipe); the model runs on the resulting
  message-flow blocks (``model(blocks, x[input_nodes])``), so memory scales
  with ``batch_size * prod(fan_out)``, not with the graph. Inference is
  *layer-wise* with full neighbourhoods (``MultiLayerFullNeighborSampler(1)``,
  one layer over all nodes in chunks of ``eval_batch_size`` destination nodes,
  then the next layer): exact (equal to the full-graph forward pass in eval
  mode) with peak memory of one layer's output ``[N, d]`` plus one chunk.
- **node-wise students**: graph-free models (``graph_free = True``, the MLP)
  read the feature rows of the batch's nodes; models with
  ``forward_nodes(graph, x, nodes)`` (SA-MLP) read the feature rows and the
  adjacency rows of those nodes only. Soft labels of KD come from the cached
  teacher outputs, sliced to the batch (``Batch.teacher``).

Mode selection (``TrainConfig.batching``): ``full`` (the previous behaviour),
``minibatch``, or ``auto`` (the default): mini-batch when the training view
has more than :data:`AUTO_MINIBATCH_NODES` nodes and the model and distiller
support it, else full batch. Every suite shipped before this module trains on
graphs below the threshold, so their results do not change.

Seeds of a batch: a distiller without a teacher (``none``) trains on the
labelled training nodes; a distiller with a teacher on its KD nodes (all
nodes of the observed graph for ``kd_nodes="all"``, GLNN) together with the
training nodes. Within a batch, ``train_idx``/``kd_idx`` are positions of
the batch's nodes, so the per-batch loss is the full-batch loss restricted
to the batch (means over the batch's labelled / KD nodes); a batch without
labelled nodes contributes no task-loss term.
"""
from __future__ import annotations

import warnings
from typing import Iterator, List, Optional

import torch

from gkd_bench.data import GraphData, ModelOutput

#: ``batching: auto`` trains in mini-batches above this many nodes (training view).
AUTO_MINIBATCH_NODES = 1_000_000
#: Fan-out per layer when neither the train config nor the model gives one.
DEFAULT_FAN_OUT = 10
BATCHING_MODES = ("auto", "full", "minibatch")


def _dataloader(graph, nodes, sampler, batch_size: int, shuffle: bool):
    """``dgl.dataloading.DataLoader`` in the main process (no workers), without DGL's CPU-affinity hint."""
    import dgl

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*CPU affinity.*")
        loader = dgl.dataloading.DataLoader(graph, nodes, sampler, batch_size=int(batch_size), shuffle=shuffle,
                                            drop_last=False)
        yield from loader


def supports_blocks(model) -> bool:
    """True for GNNs that run on sampled message-flow blocks and have layer-wise ``inference``."""
    return bool(getattr(model, "supports_blocks", False))


def node_batchable(model) -> bool:
    """True for students that predict a node from its own rows: graph-free, or with ``forward_nodes``."""
    return bool(getattr(model, "graph_free", False)) or hasattr(model, "forward_nodes")


def node_outputs(model, graph, x: torch.Tensor, nodes: torch.Tensor):
    """A node-wise model's outputs on ``nodes`` (int64 ``[B]``) alone (:func:`node_batchable`):
    ``model(None, x[nodes])`` when graph-free, else ``model.forward_nodes(graph, x, nodes)``.
    Returns ``ModelOutput`` with logits ``[B, C]`` and hidden ``[B, d_l]``."""
    if getattr(model, "graph_free", False):
        return model(None, x[nodes])
    return model.forward_nodes(graph, x, nodes)


def model_supports_minibatch(model) -> bool:
    """Whether ``model`` can train on sampled blocks (DGL message-flow graphs) or on node batches alone."""
    return supports_blocks(model) or node_batchable(model)


def resolve_batching(cfg, model, distiller, view: GraphData) -> str:
    """``"full"`` or ``"minibatch"`` for training ``model`` with ``distiller`` on ``view``.

    Args:
        cfg: :class:`~gkd_bench.fit.TrainConfig` (its ``batching``).
        model: the model being trained (a ``StudentEnsemble`` never mini-batches).
        distiller: needs class attribute ``minibatch = True`` to mini-batch, or
            ``minibatch_sets = True`` with ``batching: minibatch`` (never under ``auto``:
            its set terms change meaning with the batch).
        view: the training view (multi-graph views never mini-batch).

    Raises:
        ValueError: ``batching: minibatch`` for a model, distiller or dataset
            that cannot train in mini-batches (the message names which).
    """
    mode = cfg.batching
    if mode not in BATCHING_MODES:
        raise ValueError(f"train.batching must be one of {BATCHING_MODES}, got {mode!r}")
    if mode == "full":
        return "full"
    reasons = []
    if view.graphs:
        reasons.append(f"dataset {view.name!r} is multi-graph (batched by graphs already)")
    per_node = getattr(distiller, "minibatch", False)
    sets = mode == "minibatch" and getattr(distiller, "minibatch_sets", False)  # never chosen by auto
    if getattr(distiller, "online", False) or not (per_node or sets):
        reasons.append(f"distiller {type(distiller).__name__} has no mini-batch form "
                       "(supported: none, kd; with batching: minibatch also fitnet, at, gsp, gcrd and "
                       "kd + each, their set terms then over each mini-batch)")
    elif not model_supports_minibatch(model):
        reasons.append(f"model {type(model).__name__} has no mini-batch form "
                       "(supported: sage teachers; mlp and sa_mlp students)")
    if mode == "auto":
        return "minibatch" if view.num_nodes > AUTO_MINIBATCH_NODES and not reasons else "full"
    if reasons:
        raise ValueError("train.batching=minibatch: " + "; ".join(reasons))
    return "minibatch"


def fan_out_for(model, cfg) -> List[int]:
    """Neighbours sampled per layer, input layer first: ``cfg.fan_out``, else the model's
    ``fan_out``, else :data:`DEFAULT_FAN_OUT` per layer.

    Raises:
        ValueError: a fan-out whose length is not the model's number of layers.
    """
    layers = len(model.layers)
    fan = list(cfg.fan_out or getattr(model, "fan_out", None) or [DEFAULT_FAN_OUT] * layers)
    if len(fan) != layers:
        raise ValueError(f"fan_out {fan} must have one entry per layer ({layers})")
    return [int(f) for f in fan]


def seed_nodes(view: GraphData, distiller, teacher_out) -> torch.Tensor:
    """Node ids (into ``view``) an epoch iterates over: training nodes, plus KD nodes with a teacher."""
    train = view.splits["train"]
    if teacher_out is None or not getattr(distiller, "needs_teacher", True):
        return train
    if getattr(distiller, "kd_nodes", "all") == "all":
        return torch.arange(view.num_nodes)
    return train


def slice_output(out: Optional[ModelOutput], nodes: torch.Tensor) -> Optional[ModelOutput]:
    """``out`` restricted to ``nodes`` (logits and every hidden tensor), or ``None``."""
    if out is None:
        return None
    return ModelOutput(out.logits[nodes], tuple(h[nodes] for h in out.hidden))


def minibatches(view: GraphData, distiller, model, cfg, teacher_out: Optional[ModelOutput]) -> Iterator:
    """One epoch of :class:`~gkd_bench.methods._distiller.Batch` es, produced lazily.

    Seeds (:func:`seed_nodes`) are shuffled with the global torch generator
    (seeded per run) and cut into batches of ``cfg.batch_size``. Sampled GNN:
    ``Batch.graph`` is the list of blocks (input layer first), ``Batch.x`` the
    features of the first block's source nodes ``[n_src, F]``; node-wise
    students: ``Batch.graph`` is ``None`` (graph-free) or the view's graph
    (``forward_nodes``), ``Batch.x`` ``[B, F]`` or the view's features.
    ``Batch.nodes`` are the seeds (int64 ``[B]``, ids of ``view``),
    ``Batch.y`` their labels, ``Batch.teacher`` the teacher outputs on them.
    """
    from gkd_bench.methods._distiller import Batch

    seeds = seed_nodes(view, distiller, teacher_out)
    is_train = torch.zeros(view.num_nodes, dtype=torch.bool)
    is_train[view.splits["train"]] = True
    kd_all = teacher_out is not None and getattr(distiller, "kd_nodes", "all") == "all"
    bs = int(cfg.batch_size)

    def batch(nodes, graph, x):
        local_train = is_train[nodes].nonzero(as_tuple=True)[0]
        kd = torch.arange(len(nodes)) if kd_all else local_train
        return Batch(graph, x, view.y[nodes], local_train, kd, view.multilabel, nodes=nodes,
                     teacher=slice_output(teacher_out, nodes))

    if supports_blocks(model):
        import dgl

        sampler = dgl.dataloading.NeighborSampler(fan_out_for(model, cfg))
        for input_nodes, output_nodes, blocks in _dataloader(view.graph, seeds.to(view.graph.idtype), sampler, bs, True):
            yield batch(output_nodes.long(), blocks, view.x[input_nodes.long()])
        return
    perm = seeds[torch.randperm(len(seeds))]
    graph_free = bool(getattr(model, "graph_free", False))
    for i in range(0, len(perm), bs):
        nodes = perm[i:i + bs]
        if graph_free:
            yield batch(nodes, None, view.x[nodes])
        else:
            yield batch(nodes, view.graph, view.x)


def forward_batch(model, batch) -> ModelOutput:
    """The model's output on ``batch``'s nodes (all nodes of a full batch).

    Full batch: ``model(graph, x)``. Mini-batch: ``model(blocks, x_src)`` for
    sampled GNNs and graph-free students (``x`` is already the batch's rows),
    ``model.forward_nodes(graph, x, nodes)`` for SA-MLP-like students.
    """
    if batch.nodes is not None and batch.graph is not None and not isinstance(batch.graph, (list, tuple)) \
            and hasattr(model, "forward_nodes"):
        return model.forward_nodes(batch.graph, batch.x, batch.nodes)
    return model(batch.graph, batch.x)


@torch.no_grad()
def predict_batched(model, graph, x: torch.Tensor, batch_size: int, keep_hidden: bool = True) -> ModelOutput:
    """Eval-mode outputs on every node of ``graph`` with memory bounded by ``batch_size``.

    Sampled GNNs: ``model.inference(graph, x, batch_size)`` (layer-wise, full
    neighbourhoods: equal to ``model(graph, x)`` up to float rounding).
    Node-wise students: chunks of ``batch_size`` nodes written into
    preallocated outputs. Other models (and ensembles): the full forward pass.
    ``keep_hidden=False`` returns no hidden tensors (evaluation needs logits
    only), so nothing of size ``[N, hidden]`` outlives a layer.

    Returns:
        ``ModelOutput`` with ``logits`` ``[N, C]`` and the hidden tensors ``[N, d_l]``
        (``()`` when ``keep_hidden`` is false).
    """
    was = model.training
    model.eval()
    try:
        if supports_blocks(model):
            return model.inference(graph, x, batch_size, keep_hidden=keep_hidden)
        if not node_batchable(model):
            out = model(graph, x)
            return out if keep_hidden else ModelOutput(out.logits, ())
        n = x.shape[0]
        logits, hidden = None, ()
        for i in range(0, n, batch_size):
            nodes = torch.arange(i, min(i + batch_size, n))
            part = node_outputs(model, graph, x, nodes)
            if logits is None:
                logits = part.logits.new_empty((n,) + tuple(part.logits.shape[1:]))
                if keep_hidden:
                    hidden = tuple(h.new_empty((n,) + tuple(h.shape[1:])) for h in part.hidden)
            logits[i:i + len(nodes)] = part.logits
            for h, ph in zip(hidden, part.hidden):
                h[i:i + len(nodes)] = ph
        return ModelOutput(logits, hidden)
    finally:
        model.train(was)


def layerwise_inference(layers, post, graph, x: torch.Tensor, batch_size: int,
                        keep_hidden: bool = True) -> ModelOutput:
    """Layer-wise full-neighbourhood inference of a stack of DGL conv ``layers``.

    For each layer in turn, every node's output is computed from the previous
    layer's outputs in chunks of ``batch_size`` destination nodes (one
    full-neighbour block per chunk), so peak memory is one layer's output
    ``[N, d]`` plus one block, never an activation per edge of the graph.

    Args:
        layers: the conv modules, input layer first; called as ``layer(block, h_src)``.
        post: ``post(i, h) -> h`` applied after layer ``i`` (norm, activation; not after the last).
        graph: the full ``dgl.DGLGraph``.
        x: node features ``[N, F]``.
        batch_size: destination nodes per chunk.
        keep_hidden: keep every hidden layer's output (else each is freed once
            the next layer is computed and ``hidden`` is ``()``).

    Returns:
        ``ModelOutput(logits [N, C], hidden)`` with one ``[N, d_l]`` per hidden layer.
    """
    import dgl

    n = graph.num_nodes()
    sampler = dgl.dataloading.MultiLayerFullNeighborSampler(1)
    nodes = torch.arange(n, dtype=graph.idtype)
    h, hidden = x, []
    for i, layer in enumerate(layers):
        out = None
        for input_nodes, output_nodes, blocks in _dataloader(graph, nodes, sampler, batch_size, False):
            hb = layer(blocks[0], h[input_nodes.long()])
            if i < len(layers) - 1:
                hb = post(i, hb)
            if out is None:
                out = hb.new_empty((n,) + tuple(hb.shape[1:]))
            out[output_nodes.long()] = hb
        if i < len(layers) - 1 and keep_hidden:
            hidden.append(out)
        h = out
    return ModelOutput(h, tuple(hidden))
