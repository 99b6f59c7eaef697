"""Label inputs and label reuse (Wang et al. 2021; the G-CRD ogbn-arxiv teacher, arxiv_dgl/gat.py):
what the wrapped model sees in training and evaluation, the loss nodes, the wiring through
build_model / fit / the teacher cache, and errors."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn import functional as F

import gkd_bench  # noqa: F401 - fills the registries
from gkd_bench.data import ModelOutput
from gkd_bench.fit import TrainConfig, fit, make_batch
from gkd_bench.label_reuse import LabelReuse
from gkd_bench.registry import DISTILLERS
from gkd_bench.runner import build_model

from conftest import synthetic_graph


class Spy(torch.nn.Module):
    """A linear model that records every input it is given."""

    def __init__(self, in_dim, c):
        super().__init__()
        self.lin = torch.nn.Linear(in_dim, c)
        self.seen = []

    def forward(self, graph, x):
        self.seen.append(x.detach().clone())
        return ModelOutput(self.lin(x), (x,))


def _wrapped(data, iters=0, rate=0.5):
    torch.manual_seed(0)
    return LabelReuse(Spy(data.num_features + data.num_classes, data.num_classes), data.num_classes,
                      rate, iters).bind_data(data)


def test_evaluation_shows_every_training_label_and_nothing_else(tiny):
    model = _wrapped(tiny).eval()
    model(tiny.graph, tiny.x)
    (x,) = model.model.seen
    f = tiny.num_features
    assert torch.equal(x[:, :f], tiny.x)
    want = torch.zeros(tiny.num_nodes, tiny.num_classes)
    want[tiny.splits["train"]] = F.one_hot(tiny.y[tiny.splits["train"]], tiny.num_classes).float()
    assert torch.equal(x[:, f:], want)


def test_label_reuse_feeds_back_the_softmax_of_the_previous_pass(tiny):
    """iters 2: three passes; before passes 2 and 3 every node without a shown label carries the softmax of
    the previous pass's logits, training nodes keep their one-hot labels."""
    model = _wrapped(tiny, iters=2).eval()
    out = model(tiny.graph, tiny.x)
    seen = model.model.seen
    assert len(seen) == 3
    f, train = tiny.num_features, tiny.splits["train"]
    rest = torch.ones(tiny.num_nodes, dtype=torch.bool)
    rest[train] = False
    for before, after in zip(seen[:-1], seen[1:]):
        logits = model.model.lin(before)
        assert torch.allclose(after[rest, f:], F.softmax(logits[rest], -1), atol=1e-6)
        assert torch.equal(after[train, f:], seen[0][train, f:])
    assert torch.allclose(out.logits, model.model.lin(seen[-1]), atol=1e-6)


def test_training_shows_a_random_half_and_computes_the_loss_on_the_other(tiny):
    """resample_inputs draws mask = rand < mask_rate over the training nodes (replayed here): the masked
    nodes show their labels, the others are the batch's loss nodes and show zeros (no label leaks)."""
    model = _wrapped(tiny, rate=0.5).train()
    batch = make_batch(tiny, DISTILLERS.get("none")())
    torch.manual_seed(3)
    new = model.resample_inputs(batch)
    torch.manual_seed(3)
    mask = torch.rand(batch.train_idx.shape) < 0.5
    assert torch.equal(new.train_idx, batch.train_idx[~mask]) and 0 < len(new.train_idx) < len(batch.train_idx)
    model(new.graph, new.x)
    labels = model.model.seen[-1][:, tiny.num_features:]
    shown = batch.train_idx[mask]
    assert torch.equal(labels[shown], F.one_hot(tiny.y[shown], tiny.num_classes).float())
    assert labels[new.train_idx].abs().sum() == 0
    others = torch.ones(tiny.num_nodes, dtype=torch.bool)
    others[shown] = False
    assert labels[others].abs().sum() == 0


def test_training_forward_needs_resample_and_binding(tiny):
    model = _wrapped(tiny).train()
    with pytest.raises(RuntimeError, match=r"call resample_inputs\(batch\) before a training forward pass"):
        model(tiny.graph, tiny.x)
    unbound = LabelReuse(Spy(15, 3), 3)
    with pytest.raises(ValueError, match="not bound to a dataset"):
        unbound.eval()(tiny.graph, tiny.x)


def test_bad_settings_and_datasets_are_errors(tiny):
    with pytest.raises(ValueError, match=r"train.label_mask_rate must be in \(0, 1\), got 1.0"):
        TrainConfig.from_dict({"label_mask_rate": 1.0, "label_inputs": True})
    with pytest.raises(ValueError, match="train.label_iters must be >= 0, got -1"):
        TrainConfig.from_dict({"label_iters": -1, "label_inputs": True})
    with pytest.raises(ValueError, match="train.label_iters must be an integer, got 1.5"):
        TrainConfig.from_dict({"label_iters": 1.5, "label_inputs": True})
    with pytest.raises(ValueError, match="train.label_iters needs train.label_inputs: true"):
        TrainConfig.from_dict({"label_iters": 1})
    with pytest.raises(ValueError, match="train.label_mask_rate needs train.label_inputs: true"):
        TrainConfig.from_dict({"label_mask_rate": 0.3, "label_inputs": False})
    assert TrainConfig.from_dict({"label_iters": 0, "label_inputs": False}).to_dict() == TrainConfig().to_dict()
    with pytest.raises(ValueError, match="cannot be combined with train.batching: minibatch"):
        TrainConfig.from_dict({"label_inputs": True, "batching": "minibatch"})
    with pytest.raises(ValueError, match="train.label_inputs must be true or false, got 'yes'"):
        TrainConfig.from_dict({"label_inputs": "yes"})
    multi = synthetic_graph(multilabel=True)
    with pytest.raises(ValueError, match="dataset 'synthetic': label inputs .* single-graph, single-label, "
                                         "transductive"):
        LabelReuse(Spy(15, 3), 3).bind_data(multi)
    inductive = dataclasses.replace(tiny, setting="inductive")
    with pytest.raises(ValueError, match="transductive"):
        LabelReuse(Spy(15, 3), 3).bind_data(inductive)


def test_a_subgraph_reads_its_rows_by_node_id_and_another_graph_is_an_error(tiny):
    import dgl

    model = _wrapped(tiny).eval()
    nodes = torch.tensor([0, 5, 7, 11, 20])
    sg = dgl.node_subgraph(tiny.graph, nodes)
    model(sg, tiny.x[nodes])
    full = model.model.seen[0]
    model.model.seen.clear()
    model(tiny.graph, tiny.x)
    assert torch.equal(full, model.model.seen[0][nodes])
    with pytest.raises(ValueError, match="bound to a graph of 60 nodes; got a graph of 5 nodes"):
        model(dgl.graph(([0], [1]), num_nodes=5), tiny.x[:5])


def test_build_model_wraps_and_fit_trains_with_fresh_masks(tiny, monkeypatch):
    """train.label_inputs: build_model makes a GAT of F + C inputs inside LabelReuse; fit redraws the
    shown labels every epoch (the loss nodes change) and the model keeps to its defaults otherwise;
    the state dict round-trips through a second build (the teacher cache)."""
    mspec = {"model": "gat", "hparams": {"hidden": 4, "heads": 2},
             "train": TrainConfig(epochs=4, patience=10, label_inputs=True, label_iters=1).to_dict()}
    model = build_model(mspec, tiny)
    assert isinstance(model, LabelReuse) and model.model.layers[0].fc.in_features == tiny.num_features + 3
    assert model.num_hops == 4  # two GAT layers, twice
    dist = DISTILLERS.get("none")()
    loss_nodes = []
    real = type(dist).train_epoch

    def spy(self, batches, m, opt, teacher_out):
        loss_nodes.append(batches[0].train_idx.clone())
        return real(self, batches, m, opt, teacher_out)

    monkeypatch.setattr(type(dist), "train_epoch", spy)
    res = fit(model, dist, tiny, None, TrainConfig.from_dict(mspec["train"]))
    assert res.epochs_run == 4 and len(loss_nodes) == 4
    assert any(not torch.equal(a, b) for a, b in zip(loss_nodes, loss_nodes[1:]))
    again = build_model(mspec, tiny)
    again.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(again.eval()(tiny.graph, tiny.x).logits, model.eval()(tiny.graph, tiny.x).logits)
    assert not any(k.endswith(("onehot", "train_nodes")) for k in model.state_dict())
    plain = build_model({"model": "gat", "hparams": {"hidden": 4, "heads": 2}}, tiny)
    assert not isinstance(plain, LabelReuse)


class ModeSpy(Spy):
    """Spy that also records whether it ran in training mode and with gradients enabled."""

    def __init__(self, in_dim, c):
        super().__init__(in_dim, c)
        self.modes = []

    def forward(self, graph, x):
        self.modes.append((self.training, torch.is_grad_enabled()))
        return super().forward(graph, x)


def test_training_with_label_reuse_feeds_back_to_the_loss_nodes_and_trains_on_the_last_pass(tiny):
    """iters 1 in training (arxiv_dgl/gat.py train()): pass 1 shows the drawn half; before pass 2 every node
    without a shown label -- the loss nodes included -- carries softmax(pass-1 logits); both passes run in
    training mode, only pass 2 with gradients, and the loss gradient is pass 2's alone."""
    torch.manual_seed(0)
    model = LabelReuse(ModeSpy(tiny.num_features + tiny.num_classes, tiny.num_classes), tiny.num_classes,
                       0.5, 1).bind_data(tiny).train()
    batch = model.resample_inputs(make_batch(tiny, DISTILLERS.get("none")()))
    out = model(batch.graph, batch.x)
    spy, f = model.model, tiny.num_features
    first, second = spy.seen
    assert spy.modes == [(True, False), (True, True)]
    shown = first[:, f:].sum(1) > 0
    loss_nodes = batch.train_idx
    assert not shown[loss_nodes].any() and shown.sum() == len(tiny.splits["train"]) - len(loss_nodes)
    with torch.no_grad():
        soft = F.softmax(spy.lin(first), -1)
    assert torch.allclose(second[~shown, f:], soft[~shown], atol=1e-6)
    assert torch.equal(second[shown, f:], first[shown, f:])
    # the loss nodes' own labels never reach the loss: their channels are predictions, not one-hots
    own = F.one_hot(tiny.y[loss_nodes], tiny.num_classes).float()
    assert not torch.allclose(second[loss_nodes, f:], own)
    loss = F.cross_entropy(out.logits[loss_nodes], tiny.y[loss_nodes])
    loss.backward()
    grad = spy.lin.weight.grad.clone()
    spy.lin.weight.grad = None
    F.cross_entropy(spy.lin(second)[loss_nodes], tiny.y[loss_nodes]).backward()
    assert torch.allclose(grad, spy.lin.weight.grad, atol=1e-6)


def test_online_distillers_refuse_label_inputs(tiny):
    from gkd_bench.methods._distiller import StudentEnsemble

    students = StudentEnsemble([_wrapped(tiny), _wrapped(tiny)])
    dist = DISTILLERS.get("alignahead")(num_students=2)
    with pytest.raises(ValueError, match="online distillers train their students without label inputs"):
        fit(students, dist, tiny, None, TrainConfig(epochs=1, label_inputs=True))
