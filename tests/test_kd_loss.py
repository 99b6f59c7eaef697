"""Golden values for the supervised and KD losses (METHODS.md "Offline distillers")."""
import math

import pytest
import torch

from gkd_bench.methods._distiller import Batch
from gkd_bench.methods.kd import KD, kd_loss
from gkd_bench.methods.none import Supervised
from gkd_bench.data import ModelOutput

ZS = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
ZT = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])


def _kl_by_hand(zs, zt, T):
    """sum_i sum_c p_t log(p_t / p_s), written out with math.exp, no torch.kl_div."""
    total = 0.0
    for s_row, t_row in zip(zs.tolist(), zt.tolist()):
        es = [math.exp(v / T) for v in s_row]
        et = [math.exp(v / T) for v in t_row]
        ps = [e / sum(es) for e in es]
        pt = [e / sum(et) for e in et]
        total += sum(a * math.log(a / b) for a, b in zip(pt, ps))
    return total


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_kd_batchmean_matches_hand_formula(T):
    expected = T * T * _kl_by_hand(ZS, ZT, T) / 2
    assert kd_loss(ZS, ZT, T, "batchmean").item() == pytest.approx(expected, rel=1e-6)


def test_kd_elementwise_divides_by_classes_too():
    expected = _kl_by_hand(ZS, ZT, 4.0) * 16 / (2 * 3)
    got = kd_loss(ZS, ZT, 4.0, "elementwise").item()
    assert got == pytest.approx(expected, rel=1e-6)
    assert got == pytest.approx(kd_loss(ZS, ZT, 4.0, "batchmean").item() / 3, rel=1e-6)


def test_kd_golden_number():
    # Independent reference computed once with the hand formula above at T = 1.
    assert kd_loss(ZS, ZT, 1.0).item() == pytest.approx(0.5230738, abs=1e-6)


def test_kd_zero_when_logits_equal_and_no_teacher_gradient():
    zt = ZT.clone().requires_grad_(True)
    zs = ZT.clone().requires_grad_(True)
    loss = kd_loss(zs, zt, 2.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    (kd_loss(ZS.clone().requires_grad_(True), zt, 2.0)).backward()
    assert zt.grad is None


def test_kd_multilabel_is_bce_with_sigmoid_targets():
    zs, zt = torch.tensor([[0.3, -1.0]]), torch.tensor([[2.0, 0.0]])
    p = [1 / (1 + math.exp(-2.0)), 0.5]
    q = [1 / (1 + math.exp(-0.3)), 1 / (1 + math.exp(1.0))]
    bce = -sum(a * math.log(b) + (1 - a) * math.log(1 - b) for a, b in zip(p, q)) / 2
    assert kd_loss(zs, zt, 1.0, multilabel=True).item() == pytest.approx(bce, rel=1e-6)


def test_kd_bad_input():
    with pytest.raises(ValueError, match="kl_reduction"):
        kd_loss(ZS, ZT, 1.0, "sum")
    with pytest.raises(ValueError, match="differ"):
        kd_loss(ZS, ZT[:, :2], 1.0)
    with pytest.raises(ValueError, match="lam"):
        KD(lam=1.5)
    with pytest.raises(ValueError, match="T must be positive"):
        KD(T=0)


def test_kd_distiller_mixes_terms_on_the_right_nodes():
    y = torch.tensor([0, 2])
    batch = Batch(None, None, y, train_idx=torch.tensor([0]), kd_idx=torch.tensor([0, 1]))
    terms = KD(lam=0.3, T=2.0).loss(batch, ModelOutput(ZS), ModelOutput(ZT))
    ce = -math.log(math.exp(1.0) / (math.exp(1.0) + 1 + math.exp(-1.0)))
    kd = 4 * _kl_by_hand(ZS, ZT, 2.0) / 2
    assert terms["task"].item() == pytest.approx(ce, rel=1e-6)
    assert terms["kd"].item() == pytest.approx(kd, rel=1e-6)
    assert terms["loss"].item() == pytest.approx(0.7 * ce + 0.3 * kd, rel=1e-6)


def test_supervised_is_cross_entropy_on_train_nodes_only():
    y = torch.tensor([0, 2])
    batch = Batch(None, None, y, train_idx=torch.tensor([1]), kd_idx=torch.tensor([0, 1]))
    ce = -math.log(math.exp(0.0) / (2 * math.exp(0.5) + 1))
    assert Supervised().loss(batch, ModelOutput(ZS), None)["loss"].item() == pytest.approx(ce, rel=1e-6)
