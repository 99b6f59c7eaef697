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
