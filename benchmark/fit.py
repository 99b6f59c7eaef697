"""The one training loop: teachers and students alike (DESIGN.md "Flow of one run").

Full-batch or mini-batch training (``TrainConfig.batching``; mini-batches,
neighbour sampling and bounded-memory inference live in
:mod:`gkd_bench.minibatch`) with Adam (``TrainConfig.optimizer``: or RMSprop,
optionally after a linear warm-up), evaluation on the validation split every
``eval_every`` epochs, early stopping after ``patience`` epochs without a
better validation score, and the best-validation weights restored. "Better"
is a higher validation score, or an equal score with a lower validation loss
(ties in accuracy are frequent on small validation sets; GAT's reference code
also stops on accuracy or loss); ``TrainConfig.selection: loss`` ranks by
validation loss first instead.
Methods differ only in their distiller's loss (and, for online methods, its
``train_step``).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from gkd_bench.data import GraphData, ModelOutput
from gkd_bench.metrics import score
from gkd_bench.methods._distiller import TASK_LOSSES, Batch, Distiller, task_loss, StudentEnsemble
from gkd_bench.minibatch import slice_output

# Multi-graph datasets (PPI): training graphs per batch (dgl.batch), as the
# reference code of GAT/LSP/Alignahead on PPI (batch size 2).
GRAPHS_PER_BATCH = 2


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one model's training.

    Attributes:
        epochs: maximum number of epochs (full passes).
        lr: learning rate.
        weight_decay: L2 weight decay (the optimiser's own).
        patience: stop after this many epochs without a better validation score.
        eval_every: evaluate every this many epochs.
        max_time_s: wall-clock budget in seconds (0 = none); exceeding it ends
            training early with the best weights so far and flags ``timed_out``.
        batching: ``auto`` (mini-batch above
            :data:`gkd_bench.minibatch.AUTO_MINIBATCH_NODES` nodes when the model
            and distiller support it), ``full`` or ``minibatch`` (an error when
            unsupported); see :mod:`gkd_bench.minibatch`. An epoch is then one
            pass over the seed nodes.
        batch_size: seed nodes per mini-batch.
        fan_out: neighbours sampled per layer (input layer first) for sampled
            GNNs; ``None``: the model's ``fan_out`` hyperparameter, else 10 per layer.
        eval_batch_size: destination nodes per chunk of mini-batch runs'
            layer-wise / chunked inference (evaluation, teacher outputs).
        graphs_per_batch: multi-graph datasets (PPI): training graphs joined per step
            (:func:`make_batches`; default :data:`GRAPHS_PER_BATCH`, DGL's PPI example; the G-CRD
            reference trains on one graph per step).
        optimizer: ``adam`` (default) or ``rmsprop`` (torch's defaults otherwise; the G-CRD
            ogbn-arxiv GAT teacher, ``arxiv_dgl/gat.py``); see :func:`make_optimizer`.
        warmup_epochs: linear learning-rate warm-up: epoch ``e <= warmup_epochs`` trains at
            ``lr * e / warmup_epochs`` (``torch.optim.lr_scheduler.LinearLR``; the same
            teacher: 50). 0 = none.
        selection: which weights are kept: ``metric`` (default), the epoch with the best
            validation score (ties: lower validation loss), or ``loss``, the epoch with the
            lowest validation loss (ties: better score), as the same teacher's script. Patience
            counts epochs since that epoch in both cases.
        task_loss: the supervised loss of every distiller and of validation (selection):
            ``ce`` (default; BCE for multi-label) or ``loge``, ``log(eps + CE) - log(eps)`` (the G-CRD
            ogbn-arxiv GAT teacher; :func:`gkd_bench.methods._distiller.task_loss`).
        label_inputs: training labels as extra one-hot input features (the label trick of Wang et
            al. 2021; the G-CRD ogbn-arxiv GAT teacher): the model is wrapped in
            :class:`gkd_bench.label_reuse.LabelReuse`, every epoch shows a fresh random part of the
            training labels and computes the loss on the rest; evaluation shows every training
            label. Single-graph, single-label, transductive datasets only.
        label_mask_rate: with ``label_inputs``: the share of training nodes whose labels are shown
            each epoch (the reference's ``mask_rate`` 0.5).
        label_iters: with ``label_inputs``: label reuse passes (the model's softmax fed back as the
            label inputs of the nodes without a shown label; the reference: 1). 0 = none.
    """

    epochs: int = 500
    lr: float = 0.01
    weight_decay: float = 5e-4
    patience: int = 100
    eval_every: int = 1
    max_time_s: float = 0.0
    batching: str = "auto"
    batch_size: int = 1024
    fan_out: Optional[Tuple[int, ...]] = None
    eval_batch_size: int = 16384
    graphs_per_batch: int = GRAPHS_PER_BATCH
    optimizer: str = "adam"
    warmup_epochs: int = 0
    selection: str = "metric"
    task_loss: str = "ce"
    label_inputs: bool = False
    label_mask_rate: float = 0.5
    label_iters: int = 0

    # fields added after records existed: left out of ``to_dict`` at their default, so the
    # config_id (a hash of the spec's train dict) of every earlier spec is unchanged
    _OMIT_AT_DEFAULT = ("batching", "batch_size", "fan_out", "eval_batch_size", "graphs_per_batch", "optimizer",
                        "warmup_epochs", "selection", "task_loss", "label_inputs", "label_mask_rate", "label_iters")
    #: allowed values of the string options
    _CHOICES = {"optimizer": ("adam", "rmsprop"), "selection": ("metric", "loss"), "task_loss": TASK_LOSSES}

    def __post_init__(self):
        if self.fan_out is not None:
            object.__setattr__(self, "fan_out", tuple(int(f) for f in self.fan_out))

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> "TrainConfig":
        """Build from a dict; unknown keys raise ``ValueError`` naming them and the known ones.

        Raises:
            ValueError: unknown keys, an unknown ``batching``/``optimizer``/``selection``, a
                non-positive ``batch_size``/``eval_batch_size``/``graphs_per_batch``, a negative
                ``warmup_epochs`` or ``label_iters``, a ``label_mask_rate`` outside (0, 1), a
                non-boolean ``label_inputs``, ``label_mask_rate`` / ``label_iters`` set away from
                their defaults without ``label_inputs``, ``label_inputs`` with ``batching: minibatch``, a non-integer value of an integer
                option or a malformed ``fan_out``.
        """
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown train option(s) {unknown}; known: {sorted(known)}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        out = {}
        for k, v in d.items():
            if k == "batching":
                from gkd_bench.minibatch import BATCHING_MODES

                if v not in BATCHING_MODES:
                    raise ValueError(f"train.batching must be one of {list(BATCHING_MODES)}, got {v!r}")
                out[k] = str(v)
            elif k == "fan_out":
                if v is not None and (not isinstance(v, (list, tuple)) or not v
                                      or any(int(f) < 1 for f in v)):
                    raise ValueError(f"train.fan_out must be a list of positive ints (one per layer), got {v!r}")
                out[k] = None if v is None else tuple(int(f) for f in v)
            elif k in cls._CHOICES:
                if v not in cls._CHOICES[k]:
                    raise ValueError(f"train.{k} must be one of {list(cls._CHOICES[k])}, got {v!r}")
                out[k] = str(v)
            elif types[k] == "bool":
                if not isinstance(v, bool):
                    raise ValueError(f"train.{k} must be true or false, got {v!r}")
                out[k] = v
            elif types[k] == "int":
                if isinstance(v, bool) or float(v) != int(float(v)):
                    raise ValueError(f"train.{k} must be an integer, got {v!r}")
                out[k] = int(float(v))
            else:
                out[k] = float(v)
        for k in ("batch_size", "eval_batch_size", "graphs_per_batch"):
            if k in out and out[k] < 1:
                raise ValueError(f"train.{k} must be positive, got {out[k]}")
        if out.get("warmup_epochs", 0) < 0:
            raise ValueError(f"train.warmup_epochs must be >= 0, got {out['warmup_epochs']}")
        if not 0.0 < out.get("label_mask_rate", 0.5) < 1.0:
            raise ValueError(f"train.label_mask_rate must be in (0, 1), got {out['label_mask_rate']}")
        if out.get("label_iters", 0) < 0:
            raise ValueError(f"train.label_iters must be >= 0, got {out['label_iters']}")
        stray = [k for k in ("label_mask_rate", "label_iters")
                 if out.get(k, getattr(cls, k)) != getattr(cls, k) and not out.get("label_inputs")]
        if stray:  # as the reference: "'--use-labels' must be enabled when n_label_iters > 0"
            raise ValueError(f"train.{stray[0]} needs train.label_inputs: true")
        if out.get("label_inputs") and out.get("batching") == "minibatch":
            raise ValueError("train.label_inputs trains in full batch; it cannot be combined with "
                             "train.batching: minibatch")
        return cls(**out)

    def to_dict(self) -> dict:
        """Every field, except the mini-batch ones while at their defaults (stable config ids)."""
        d = dataclasses.asdict(self)
        for k in self._OMIT_AT_DEFAULT:
            if d[k] == getattr(type(self), k):
                del d[k]
        if d.get("fan_out") is not None:
            d["fan_out"] = list(d["fan_out"])
        return d


@dataclass
class FitResult:
    """What the training loop returns: the selected epoch (best validation score), that score, epochs run,
    wall time in seconds, whether the time limit stopped it, per-epoch history, per-student best epochs and
    scores for online distillers, and whether it trained full-graph or on mini-batches."""

    best_epoch: int
    best_val: float
    epochs_run: int
    train_s: float
    timed_out: bool = False
    history: List[Dict[str, float]] = field(default_factory=list)
    member_best_epochs: List[int] = field(default_factory=list)   # online: per student
    member_best_vals: List[float] = field(default_factory=list)
    batching: str = "full"                                         # "full" | "minibatch"


def make_batch(view: GraphData, distiller: Distiller) -> Batch:
    """Full-batch :class:`Batch` of a training view; KD nodes per ``distiller.kd_nodes``."""
    train = view.splits["train"]
    kd = torch.arange(view.num_nodes) if getattr(distiller, "kd_nodes", "all") == "all" else train
    return Batch(view.graph, view.x, view.y, train, kd, view.multilabel)


def graph_offsets(parts: List[GraphData]) -> torch.Tensor:
    """Row offsets of each graph in outputs concatenated over ``parts`` (:func:`predict_graphs`).

    Returns:
        int64 ``[G + 1]``: graph g owns rows ``offsets[g]:offsets[g + 1]``; ``offsets[-1]``
        is the total node count.
    """
    sizes = torch.tensor([p.num_nodes for p in parts], dtype=torch.long)
    return torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])


def predict_graphs(model: torch.nn.Module, parts: List[GraphData], batch_size: Optional[int] = None,
                   keep_hidden: bool = True) -> ModelOutput:
    """Eval-mode outputs without gradients on each graph of ``parts``, one at a time, concatenated.

    What a multi-graph view's teacher outputs (``parts = view.graphs["train"]``,
    :meth:`gkd_bench.runner.Runner.get_teacher`) and pooled evaluations are made of:
    each graph is run alone with :func:`predict`, the way models are evaluated.

    Raises:
        ValueError: an empty ``parts``.

    Returns:
        ``ModelOutput`` with logits ``[sum_g n_g, C]`` and hidden ``[sum_g n_g, d_l]``
        (``()`` when ``keep_hidden`` is false), rows in the order of ``parts`` and of
        each graph's nodes (:func:`graph_offsets` gives where each graph starts).
    """
    if not parts:
        raise ValueError("predict_graphs needs at least one graph")
    offsets = graph_offsets(parts)
    n = int(offsets[-1])
    logits, hidden = None, ()
    for p, a, b in zip(parts, offsets[:-1].tolist(), offsets[1:].tolist()):
        out = predict(model, p.graph, p.x, batch_size, keep_hidden)
        if logits is None:  # preallocated: peak memory one copy of the outputs plus one graph's
            logits = out.logits.new_empty((n,) + tuple(out.logits.shape[1:]))
            if keep_hidden:
                hidden = tuple(h.new_empty((n,) + tuple(h.shape[1:])) for h in out.hidden)
        logits[a:b] = out.logits
        for h, ph in zip(hidden, out.hidden if keep_hidden else ()):
            h[a:b] = ph
    return ModelOutput(logits, hidden)


def make_batches(view: GraphData, distiller: Distiller, teacher_out: Optional[ModelOutput] = None,
                 graphs_per_batch: int = GRAPHS_PER_BATCH) -> List[Batch]:
    """One epoch's batches: the full batch, or for a multi-graph view (``view.graphs``) the
    training graphs in a fresh random order (global torch RNG), ``graphs_per_batch`` per
    ``dgl.batch`` (the last batch may hold fewer), every node labelled (train and KD nodes = all
    nodes of the batch).

    Multi-graph batches carry ``graph_sizes`` (node counts of their graphs, in batch
    order) and, with ``teacher_out``, ``teacher``: the rows of ``teacher_out`` of exactly
    the batch's nodes in the batch's node order (as mini-batches slice them,
    :func:`gkd_bench.minibatch.slice_output`).

    Args:
        view: the training view.
        distiller: decides the KD nodes of a full batch (``kd_nodes``).
        teacher_out: multi-graph views only: frozen teacher outputs on every training
            graph concatenated in ``view.graphs["train"]`` order (:func:`predict_graphs`),
            logits ``[N_train, C]`` and hidden ``[N_train, d_l]``. A single-graph view's
            batch reads the whole ``teacher_out`` in :meth:`Distiller.train_step` instead.

    Raises:
        ValueError: ``teacher_out`` whose row count is not the training graphs' node total, or
            ``graphs_per_batch`` < 1.
    """
    per = int(graphs_per_batch)
    if per < 1:
        raise ValueError(f"graphs_per_batch must be positive, got {graphs_per_batch}")
    if not view.graphs:
        return [make_batch(view, distiller)]
    import dgl

    train = view.graphs["train"]
    offsets = graph_offsets(train)
    if teacher_out is not None and teacher_out.logits.shape[0] != int(offsets[-1]):
        raise ValueError(f"dataset {view.name!r}: teacher outputs have {teacher_out.logits.shape[0]} rows, but "
                         f"the {len(train)} training graphs have {int(offsets[-1])} nodes (expected the "
                         "outputs of predict_graphs on view.graphs['train'])")
    order = torch.randperm(len(train)).tolist()
    out = []
    for i in range(0, len(order), per):
        chunk = order[i:i + per]
        parts = [train[j] for j in chunk]
        g = dgl.batch([p.graph for p in parts])
        idx = torch.arange(g.num_nodes())
        teacher = None
        if teacher_out is not None:
            rows = torch.cat([torch.arange(int(offsets[j]), int(offsets[j + 1])) for j in chunk])
            teacher = slice_output(teacher_out, rows.to(teacher_out.logits.device))
        out.append(Batch(g, torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]), idx, idx,
                         view.multilabel, teacher=teacher,
                         graph_sizes=torch.tensor([p.num_nodes for p in parts], dtype=torch.long)))
    return out


def check_multigraph(distiller: Distiller, view: GraphData) -> None:
    """Raise unless ``distiller`` can train on ``view``'s batches of graphs (``distiller.multigraph``).

    Raises:
        ValueError: naming the dataset, the distiller (registry key) and the reason the
            distiller gives (``multigraph_reason``).
    """
    if getattr(distiller, "multigraph", True):
        return
    from gkd_bench.registry import DISTILLERS

    name = next((k for k in DISTILLERS if DISTILLERS.get(k) is type(distiller)), type(distiller).__name__)
    reason = getattr(distiller, "multigraph_reason", "")
    raise ValueError(f"dataset {view.name!r} is multi-graph ({len(view.graphs.get('train', []))} training "
                     f"graphs, trained in batches of graphs): distiller {name!r} does not support "
                     f"multi-graph datasets" + (f" ({reason})" if reason else ""))


def split_eval(model: torch.nn.Module, view: GraphData, split: str, batch_size: Optional[int] = None,
               loss: str = "ce") -> tuple:
    """(score in %, task loss) of ``model`` on ``split`` of ``view``: the split's nodes of the
    graph, or for a multi-graph view every node of the split's graphs, pooled (micro-F1 over
    all of them). ``batch_size``: bounded-memory inference (see :func:`predict`); ``loss``: the
    kind of task loss (:func:`gkd_bench.methods._distiller.task_loss`)."""
    if view.graphs:
        parts = view.graphs[split]
        logits = predict_graphs(model, parts, keep_hidden=False).logits
        y = torch.cat([p.y for p in parts])
        idx = torch.arange(len(y))
    else:
        idx = view.splits[split]
        logits, y = predict(model, view.graph, view.x, batch_size, keep_hidden=False).logits, view.y
    return (score(view.metric, logits[idx], y[idx]),
            float(task_loss(logits, y, idx, view.multilabel, loss)))


def split_score(model: torch.nn.Module, view: GraphData, split: str, batch_size: Optional[int] = None) -> float:
    """Score (%) of ``model`` on ``split`` of ``view`` (see :func:`split_eval`)."""
    return split_eval(model, view, split, batch_size)[0]


@torch.no_grad()
def predict(model: torch.nn.Module, graph, x: torch.Tensor, batch_size: Optional[int] = None,
            keep_hidden: bool = True) -> ModelOutput:
    """Eval-mode forward pass without gradients.

    ``batch_size=None``: one forward pass on the whole graph. Otherwise
    bounded-memory inference with ``batch_size`` nodes per chunk
    (:func:`gkd_bench.minibatch.predict_batched`: layer-wise for sampled GNNs,
    node chunks for MLP / SA-MLP), what mini-batch runs use; there
    ``keep_hidden=False`` drops the ``[N, d]`` hidden tensors (scores need logits only).
    """
    if batch_size is not None:
        from gkd_bench.minibatch import predict_batched

        return predict_batched(model, graph, x, int(batch_size), keep_hidden)
    was = model.training
    model.eval()
    out = model(graph, x)
    model.train(was)
    return out


def eval_batch_size(cfg: TrainConfig, batching: str) -> Optional[int]:
    """The ``batch_size`` argument of :func:`predict` for a run trained in mode ``batching``."""
    return int(cfg.eval_batch_size) if batching == "minibatch" else None


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``params`` with ``cfg.lr`` and ``cfg.weight_decay``: ``torch.optim.Adam`` or
    ``torch.optim.RMSprop`` (other arguments at torch's defaults)."""
    cls = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[cfg.optimizer]
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def fit(model: torch.nn.Module, distiller: Distiller, view: GraphData,
        teacher_out: Optional[ModelOutput], cfg: TrainConfig, progress=None) -> FitResult:
    """Train ``model`` on ``view`` with ``distiller``'s loss; keep the best-validation weights.

    The mode (``full`` / ``minibatch``) is resolved by
    :func:`gkd_bench.minibatch.resolve_batching` from ``cfg.batching``, the
    model, the distiller and the view's size; mini-batch epochs iterate over
    :func:`gkd_bench.minibatch.minibatches` and validation uses bounded-memory
    inference. Online distillers (``distiller.online``) get a :class:`StudentEnsemble`
    and make one optimiser per student; each student keeps its own
    best-validation weights, and training stops when no student improved for
    ``patience`` epochs.

    Args:
        model: the student (or teacher being trained), or the students.
        distiller: provides ``loss``/``train_epoch``; its own parameters are
            optimised together with the model's.
        view: the training view (``GraphData.training_view()``).
        teacher_out: frozen teacher outputs on ``view`` (``None`` for ``none``); for a
            multi-graph view, on its training graphs concatenated in order
            (:func:`predict_graphs`), sliced per batch by :func:`make_batches`.
        cfg: optimisation settings.
        progress: optional callable ``(epoch, val)`` for progress display.

    Returns:
        FitResult; ``model`` holds the best-validation weights on return.

    Raises:
        FloatingPointError: when the loss becomes NaN or infinite.
        ValueError: a multi-graph view with a distiller that does not train on batches
            of graphs (``multigraph = False``), naming both; ``batching: minibatch`` for a
            model or distiller without a mini-batch form.
    """
    from gkd_bench.minibatch import minibatches, resolve_batching

    if view.graphs:
        check_multigraph(distiller, view)
    if getattr(distiller, "online", False):
        opt = distiller.make_optimizers(model, cfg)
    else:
        params = list(model.parameters()) + [p for p in distiller.parameters() if p.requires_grad]
        opt = make_optimizer(params, cfg)
    warmup = [torch.optim.lr_scheduler.LinearLR(o, start_factor=1.0 / cfg.warmup_epochs,
                                                total_iters=cfg.warmup_epochs - 1)
              for o in (opt if isinstance(opt, (list, tuple)) else [opt])] if cfg.warmup_epochs > 1 else []
    members = list(model) if isinstance(model, StudentEnsemble) else [model]
    if len(members) > 1 and any(hasattr(m, "resample_inputs") for m in members):
        raise ValueError("train.label_inputs is for one model trained alone or distilled offline; online "
                         "distillers train their students without label inputs")
    batching = "full" if isinstance(model, StudentEnsemble) else resolve_batching(cfg, model, distiller, view)
    ebs = eval_batch_size(cfg, batching)
    fixed = None if view.graphs or batching == "minibatch" else [make_batch(view, distiller)]
    best_val = [-math.inf] * len(members)
    best_loss = [math.inf] * len(members)
    best_epoch = [-1] * len(members)
    best_state = [None] * len(members)
    history: List[Dict[str, float]] = []
    start = time.perf_counter()
    timed_out = False
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        if batching == "minibatch":
            batches = minibatches(view, distiller, model, cfg, teacher_out)
        else:
            batches = fixed or make_batches(view, distiller, teacher_out if view.graphs else None,
                                            cfg.graphs_per_batch)
        if hasattr(model, "resample_inputs"):  # label inputs: this epoch's shown labels and loss nodes
            batches = [model.resample_inputs(b) for b in batches]
        if cfg.task_loss != "ce":  # a list stays a list (online distillers pass over it once per
            # student); mini-batches stay lazy (made one at a time)
            batches = map(functools.partial(dataclasses.replace, task_loss=cfg.task_loss), batches)
            batches = batches if batching == "minibatch" else list(batches)
        terms = distiller.train_epoch(batches, model, opt, teacher_out)
        if not math.isfinite(terms["loss"]):
            raise FloatingPointError(f"loss became {terms['loss']} at epoch {epoch}")
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            evals = [split_eval(m, view, "val", ebs, cfg.task_loss) for m in members]
            vals = [v for v, _ in evals]
            for i, (m, (val, val_loss)) in enumerate(zip(members, evals)):
                if cfg.selection == "loss":
                    better = val_loss < best_loss[i] or (val_loss == best_loss[i] and val > best_val[i])
                else:
                    better = val > best_val[i] or (val == best_val[i] and val_loss < best_loss[i])
                if better:
                    best_val[i], best_loss[i], best_epoch[i] = val, val_loss, epoch
                    best_state[i] = copy.deepcopy(m.state_dict())
            terms["val"] = sum(vals) / len(vals)
            if progress is not None:
                progress(epoch, terms["val"])
            if epoch - max(best_epoch) >= cfg.patience:
                break
        history.append(terms)
        for sched in warmup:  # the next epoch's learning rate
            sched.step()
        if cfg.max_time_s and time.perf_counter() - start > cfg.max_time_s:
            timed_out = True
            break
    for m, state in zip(members, best_state):
        if state is not None:
            m.load_state_dict(state)
    after_fit = getattr(distiller, "after_fit", None)
    if after_fit is not None:  # a later training stage from the restored best weights (sa_mlp_ind)
        after_fit(model, view, teacher_out, cfg)
    return FitResult(max(best_epoch), sum(best_val) / len(best_val), epoch, time.perf_counter() - start,
                     timed_out, history, best_epoch, best_val, batching)
