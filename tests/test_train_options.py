"""TrainConfig options of the training loop: optimiser, linear warm-up, selection on validation loss
(the G-CRD ogbn-arxiv GAT teacher's recipe, arxiv_dgl/gat.py), and their place in config ids."""
from __future__ import annotations

import pytest
import torch

import gkd_bench  # noqa: F401 - fills the registries
import gkd_bench.fit as fit_mod
from gkd_bench.fit import TrainConfig, fit, make_optimizer
from gkd_bench.registry import DISTILLERS, MODELS


def test_new_options_stay_out_of_to_dict_at_their_defaults_and_validate():
    assert not {"optimizer", "warmup_epochs", "selection"} & set(TrainConfig().to_dict())
    cfg = TrainConfig.from_dict({"optimizer": "rmsprop", "warmup_epochs": 50, "selection": "loss"})
    assert {k: cfg.to_dict()[k] for k in ("optimizer", "warmup_epochs", "selection")} == {
        "optimizer": "rmsprop", "warmup_epochs": 50, "selection": "loss"}
    with pytest.raises(ValueError, match=r"train.optimizer must be one of \['adam', 'rmsprop'\], got 'sgd'"):
        TrainConfig.from_dict({"optimizer": "sgd"})
    with pytest.raises(ValueError, match=r"train.selection must be one of \['metric', 'loss'\], got 'val'"):
        TrainConfig.from_dict({"selection": "val"})
    with pytest.raises(ValueError, match="train.warmup_epochs must be >= 0, got -1"):
        TrainConfig.from_dict({"warmup_epochs": -1})


def test_make_optimizer_builds_the_named_torch_optimizer():
    w = [torch.nn.Parameter(torch.zeros(3))]
    rms = make_optimizer(w, TrainConfig(optimizer="rmsprop", lr=0.002, weight_decay=0.0))
    assert type(rms) is torch.optim.RMSprop and rms.param_groups[0]["lr"] == 0.002
    adam = make_optimizer(w, TrainConfig(lr=0.01, weight_decay=5e-4))
    assert type(adam) is torch.optim.Adam and adam.param_groups[0]["weight_decay"] == 5e-4


def _student(data):
    torch.manual_seed(0)
    return MODELS.get("mlp")(data.num_features, data.num_classes, hidden=8)


def test_linear_warmup_learning_rates(tiny, monkeypatch):
    """warmup_epochs 4: epochs 1..4 train at lr * e / 4, then at lr (arxiv_dgl/gat.py adjust_learning_rate)."""
    dist = DISTILLERS.get("none")()
    seen = []
    real = type(dist).train_epoch

    def spy(self, batches, model, opt, teacher_out):
        seen.append(opt.param_groups[0]["lr"])
        return real(self, batches, model, opt, teacher_out)

    monkeypatch.setattr(type(dist), "train_epoch", spy)
    fit(_student(tiny), dist, tiny, None, TrainConfig(epochs=6, patience=10, lr=0.02, warmup_epochs=4))
    assert seen == pytest.approx([0.005, 0.01, 0.015, 0.02, 0.02, 0.02])
    seen.clear()
    fit(_student(tiny), dist, tiny, None, TrainConfig(epochs=3, patience=10, lr=0.02))
    assert seen == pytest.approx([0.02] * 3)


@pytest.mark.parametrize("selection, want_epoch", [("metric", 3), ("loss", 4)])
def test_selection_keeps_the_best_score_or_the_lowest_loss(tiny, monkeypatch, selection, want_epoch):
    """Scripted validation (score, loss) per epoch: the best score is at epoch 3, the lowest loss at 4;
    patience counts from the kept epoch."""
    script = iter([(50.0, 1.0), (60.0, 0.9), (70.0, 1.2), (55.0, 0.5), (40.0, 2.0), (40.0, 2.0), (40.0, 2.0)])
    monkeypatch.setattr(fit_mod, "split_eval", lambda *a, **k: next(script))
    res = fit(_student(tiny), DISTILLERS.get("none")(), tiny, None,
              TrainConfig(epochs=7, patience=2, selection=selection))
    assert res.best_epoch == want_epoch
    assert res.epochs_run == want_epoch + 2


def test_loge_task_loss_golden_value():
    """log(eps + CE_i) - log(eps), eps = 1 - ln 2, mean over nodes (arxiv_dgl/gat.py custom_loss_function).
    Node 0: logits (2, 0, 0), label 0: CE = ln(1 + 2 e^-2); node 1: logits (0, 1, 0), label 2:
    CE = ln(e + 2); node 2 is not in idx."""
    import math

    from gkd_bench.methods._distiller import task_loss

    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [9.0, -9.0, 0.0]])
    y = torch.tensor([0, 2, 1])
    idx = torch.tensor([0, 1])
    eps = 1 - math.log(2)
    ce = [math.log(1 + 2 * math.exp(-2)), math.log(math.e + 2)]
    want = sum(math.log(eps + c) - math.log(eps) for c in ce) / 2
    assert abs(want - 1.18900) < 1e-4
    assert task_loss(logits, y, idx, False, "loge").item() == pytest.approx(want, rel=1e-6)
    assert task_loss(logits, y, idx, False).item() == pytest.approx(sum(ce) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="task loss 'loge' is for single-label data"):
        task_loss(logits, torch.zeros(3, 3), idx, True, "loge")
    with pytest.raises(ValueError, match=r"task loss must be one of \['ce', 'loge'\], got 'mse'"):
        task_loss(logits, y, idx, False, "mse")
    with pytest.raises(ValueError, match=r"train.task_loss must be one of \['ce', 'loge'\], got 'mse'"):
        TrainConfig.from_dict({"task_loss": "mse"})
    assert "task_loss" not in TrainConfig().to_dict()


def test_fit_trains_and_selects_with_the_configured_task_loss(tiny, monkeypatch):
    """task_loss: loge reaches every training batch and the validation loss used for selection."""
    dist = DISTILLERS.get("none")()
    kinds, val_kinds = [], []
    real_epoch, real_eval = type(dist).train_epoch, fit_mod.split_eval

    def spy_epoch(self, batches, model, opt, teacher_out):
        batches = list(batches)
        kinds.extend(b.task_loss for b in batches)
        return real_epoch(self, batches, model, opt, teacher_out)

    def spy_eval(model, view, split, batch_size=None, loss="ce"):
        val_kinds.append(loss)
        return real_eval(model, view, split, batch_size, loss)

    monkeypatch.setattr(type(dist), "train_epoch", spy_epoch)
    monkeypatch.setattr(fit_mod, "split_eval", spy_eval)
    fit(_student(tiny), dist, tiny, None, TrainConfig(epochs=3, patience=10, task_loss="loge", selection="loss"))
    assert kinds == ["loge"] * 3 and val_kinds == ["loge"] * 3
    kinds.clear()
    fit(_student(tiny), dist, tiny, None, TrainConfig(epochs=2, patience=10))
    assert kinds == ["ce"] * 2


def _loge(logits, y, idx):
    import math

    eps = 1 - math.log(2)
    ce = torch.nn.functional.cross_entropy(logits[idx], y[idx], reduction="none")
    return float((torch.log(eps + ce) - math.log(eps)).mean())


@pytest.mark.parametrize("name, kw", [("none", {}), ("kd", {}), ("fitnet", {"proj_dim": 4}),
                                      ("kd+gcrd", {"proj_dim": 4})])
def test_every_offline_distiller_uses_the_batch_task_loss(tiny, name, kw):
    """The supervised term of each distiller follows Batch.task_loss (LogE golden value vs CE)."""
    import dataclasses

    from gkd_bench.fit import make_batch

    torch.manual_seed(0)
    student = MODELS.get("gcn")(tiny.num_features, tiny.num_classes, hidden=6).eval()
    teacher = MODELS.get("gcn")(tiny.num_features, tiny.num_classes, hidden=8).eval()
    with torch.no_grad():
        s_out, t_out = student(tiny.graph, tiny.x), teacher(tiny.graph, tiny.x)
    dist = DISTILLERS.get(name)(**kw)
    if hasattr(dist, "setup"):
        dist.setup(tiny, student, t_out)
    batch = make_batch(tiny, dist)
    idx = batch.train_idx
    ce = dist.loss(batch, s_out, t_out)["task"]
    loge = dist.loss(dataclasses.replace(batch, task_loss="loge"), s_out, t_out)["task"]
    assert float(loge) == pytest.approx(_loge(s_out.logits, tiny.y, idx), rel=1e-5)
    assert float(ce) == pytest.approx(float(torch.nn.functional.cross_entropy(s_out.logits[idx], tiny.y[idx])),
                                      rel=1e-5)
    assert abs(float(loge) - float(ce)) > 1e-3


def test_online_students_and_deep_supervision_use_the_batch_task_loss(tiny):
    """Alignahead++: the task term and the deep-supervision heads' terms follow Batch.task_loss."""
    import dataclasses

    from gkd_bench.fit import make_batch

    dist = DISTILLERS.get("alignahead++")(num_students=2)
    torch.manual_seed(0)
    students = dist.build_students(
        MODELS.get("gat")(tiny.num_features, tiny.num_classes, hidden=4, heads=2, num_layers=3, dropout=0.0,
                          attn_dropout=0.0),
        lambda: MODELS.get("gat")(tiny.num_features, tiny.num_classes, hidden=4, heads=2, num_layers=3,
                                  dropout=0.0, attn_dropout=0.0))
    dist.setup(tiny, students, None) if hasattr(dist, "setup") else None
    opts = dist.make_optimizers(students, TrainConfig(lr=0.0, weight_decay=0.0))
    batch = dataclasses.replace(make_batch(tiny, dist), task_loss="loge")
    with torch.no_grad():
        out = students[0](tiny.graph, tiny.x)
        want_task = _loge(out.logits, tiny.y, batch.train_idx)
        heads = [h(z) for h, z in zip(dist.heads[0], out.hidden)]
        want_deep = sum(_loge(z, tiny.y, batch.train_idx) for z in heads) / (len(out.hidden) + 1)
    terms = dist.learner_step(0, batch, students, opts[0], [])
    assert terms["task"] == pytest.approx(want_task, rel=1e-5)
    assert terms["deep"] == pytest.approx(want_deep, rel=1e-5)


def test_split_eval_and_minibatches_use_the_configured_task_loss(tiny, monkeypatch):
    from gkd_bench.fit import split_eval

    torch.manual_seed(0)
    model = _student(tiny).eval()
    with torch.no_grad():
        logits = model(tiny.graph, tiny.x).logits
    _, val_loss = split_eval(model, tiny, "val", loss="loge")
    assert val_loss == pytest.approx(_loge(logits, tiny.y, tiny.splits["val"]), rel=1e-5)
    # mini-batches (a generator) carry it too
    dist = DISTILLERS.get("none")()
    kinds = []
    real = type(dist).loss

    def spy(self, batch, out, teacher_out=None):
        kinds.append((batch.task_loss, batch.nodes is not None))
        return real(self, batch, out, teacher_out)

    monkeypatch.setattr(type(dist), "loss", spy)
    fit(_student(tiny), dist, tiny, None, TrainConfig(epochs=1, patience=5, batching="minibatch", batch_size=8,
                                                      task_loss="loge"))
    assert len(kinds) == -(-len(tiny.splits["train"]) // 8) and set(kinds) == {("loge", True)}
