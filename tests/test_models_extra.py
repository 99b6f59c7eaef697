"""The SIGN student (Frasca et al., 2020) as G-CRD uses it: diffusions, caching, shapes, training."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gkd_bench  # noqa: F401  (fills the registries)
from gkd_bench.data import GraphData
from gkd_bench.fit import TrainConfig, fit
from gkd_bench.methods.sign import SIGN, cached_diffuse, diffuse
from gkd_bench.registry import DISTILLERS, MODELS


def _graph(n=9, seed=0):
    import dgl

    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (20,), generator=gen)
    dst = torch.randint(0, n, (20,), generator=gen)
    keep = src != dst
    return dgl.graph((src[keep], dst[keep]), num_nodes=n), torch.randn(n, 4, generator=gen, dtype=torch.float64)


def _dense(g, self_loops):
    """A[i, j] = number of edges j -> i (row = destination), as a NumPy matrix."""
    n = g.num_nodes()
    a = np.zeros((n, n))
    src, dst = g.edges()
    for u, v in zip(src.tolist(), dst.tolist()):
        a[v, u] += 1
    if self_loops:
        np.fill_diagonal(a, 1.0)
    return a


@pytest.mark.parametrize("self_loops", [True, False])
def test_mean_diffusion_equals_row_normalised_powers(self_loops):
    g, x = _graph()
    a = _dense(g, self_loops)
    deg = a.sum(1, keepdims=True)
    p = np.divide(a, deg, out=np.zeros_like(a), where=deg > 0)   # nodes without in-edges -> 0
    feats = diffuse(g, x, 3, "mean", self_loops)
    want = x.numpy()
    assert len(feats) == 4
    for k in range(4):
        np.testing.assert_allclose(feats[k].numpy(), want, atol=1e-12)
        want = p @ want


def test_sym_diffusion_equals_gcn_normalised_powers():
    g, x = _graph(seed=1)
    a = _dense(g, True)
    d = a.sum(1)
    p = a / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    feats = diffuse(g, x, 2, "sym", True)
    np.testing.assert_allclose(feats[2].numpy(), p @ (p @ x.numpy()), atol=1e-12)


def test_diffusion_cache_hits_only_for_the_same_graph_and_features():
    g, x = _graph(seed=2)
    x = x.float()
    a = cached_diffuse(g, x, 2, "mean", True)
    assert cached_diffuse(g, x, 2, "mean", True) is a
    assert cached_diffuse(g, x.clone(), 2, "mean", True) is not a          # new feature tensor
    b = cached_diffuse(g, x, 3, "mean", True)                              # other settings
    assert len(b) == 4 and b is not a
    c = cached_diffuse(g, x, 3, "mean", True)
    x.add_(1.0)                                                             # in-place change
    assert cached_diffuse(g, x, 3, "mean", True) is not c


def test_sign_shapes_hidden_and_parameter_count():
    g, x = _graph(seed=3)
    m = MODELS.get("sign")(in_dim=4, num_classes=3, hidden=6, num_hops=2, ff_layers=2)
    out = m(g, x.float())
    assert out.logits.shape == (9, 3)
    assert len(out.hidden) == 1 and out.hidden[0].shape == (9, 3 * 6)
    # 3 branches FF(4 -> 6 -> 6), output FF(18 -> 6 -> 3), PReLU: one weight per FF and one for the merge
    want = 3 * (4 * 6 + 6 + 6 * 6 + 6 + 1) + (18 * 6 + 6 + 6 * 3 + 3 + 1) + 1
    assert sum(p.numel() for p in m.parameters()) == want


def test_sign_gcrd_arxiv_size_is_about_3_5m_parameters():
    # G-CRD Table 4: SIGN student (3L, 3.5M) on ogbn-arxiv (128 features, 40 classes), R = 5, hidden 512
    m = SIGN(128, 40)
    n = sum(p.numel() for p in m.parameters())
    assert 3.4e6 < n < 3.6e6


def test_sign_bad_arguments():
    with pytest.raises(ValueError, match="operator"):
        SIGN(4, 3, operator="ppr")
    with pytest.raises(ValueError, match="ff_layers"):
        SIGN(4, 3, ff_layers=0)
    g, x = _graph()
    with pytest.raises(ValueError, match="rows"):
        diffuse(g, x[:5], 2)


def test_sign_trains_with_fit_and_as_a_gcrd_student():
    g, x = _graph(n=30, seed=4)
    gen = torch.Generator().manual_seed(5)
    y = torch.randint(0, 3, (30,), generator=gen)
    data = GraphData("tiny", g, x.float(), y, {"train": torch.arange(10), "val": torch.arange(10, 20),
                                               "test": torch.arange(20, 30)}, 3)
    torch.manual_seed(0)
    teacher = MODELS.get("gcn")(in_dim=4, num_classes=3, hidden=8)
    t_out = teacher(data.graph, data.x).detach()
    student = MODELS.get("sign")(in_dim=4, num_classes=3, hidden=8, num_hops=2)
    d = DISTILLERS.get("gcrd")(proj_dim=8, chunk_size=7)
    d.setup(data, student, t_out)
    res = fit(student, d, data, t_out, TrainConfig(epochs=5, patience=5))
    assert res.epochs_run == 5 and np.isfinite(res.history[-1]["loss"])


def test_input_norm_l1_l2_golden_values_and_bad_kind():
    """Kipf/Velickovic row normalisation: each row divided by its L1 norm; 'l2': by its Euclidean norm;
    zero rows stay zero."""
    from gkd_bench.methods._common import normalize_input

    x = torch.tensor([[1.0, 0.0, 3.0], [0.0, 0.0, 0.0], [-1.0, 1.0, 2.0]])
    out = normalize_input(x, "l1")
    expected = torch.tensor([[0.25, 0.0, 0.75], [0.0, 0.0, 0.0], [-0.25, 0.25, 0.5]])
    assert torch.allclose(out, expected)
    r10, r6 = 10.0 ** 0.5, 6.0 ** 0.5
    expected2 = torch.tensor([[1 / r10, 0.0, 3 / r10], [0.0, 0.0, 0.0], [-1 / r6, 1 / r6, 2 / r6]])
    assert torch.allclose(normalize_input(x, "l2"), expected2)
    assert normalize_input(x, None) is x
    with pytest.raises(ValueError, match="input_norm must be one of none, l1, l2; got 'l3'"):
        normalize_input(x, "l3")
    with pytest.raises(ValueError, match="input_norm"):
        MODELS.get("gat")(4, 3, input_norm="sum")


def test_input_norm_memo_follows_the_tensor_its_version_and_the_kind():
    """normalize_input(x, 'l1') is memoised per tensor object and version: the same x gives the same result
    object; an in-place change of x (or of the result) recomputes; another tensor with equal values gets its
    own result; with x requiring grad the result carries the graph (not memoised); a freed x drops its entry.
    Each kind has its own memo: 'l2' after 'l1' on the same x gives the L2 rows and keeps the L1 entry."""
    import gc

    from gkd_bench.methods import _common
    from gkd_bench.methods._common import normalize_input

    x = torch.tensor([[1.0, 0.0, 3.0], [2.0, 2.0, 0.0]])
    first = normalize_input(x, "l1")
    assert normalize_input(x, "l1") is first
    assert torch.equal(first, torch.tensor([[0.25, 0.0, 0.75], [0.5, 0.5, 0.0]]))
    other = x.clone()
    assert normalize_input(other, "l1") is not first
    x[0, 1] = 4.0  # in place: version bump
    again = normalize_input(x, "l1")
    assert again is not first and torch.allclose(again[0], torch.tensor([0.125, 0.5, 0.375]))
    again.mul_(0.0)  # the caller spoilt the memoised result: recomputed
    assert torch.allclose(normalize_input(x, "l1")[0], torch.tensor([0.125, 0.5, 0.375]))
    w = torch.tensor([[1.0, 3.0]], requires_grad=True)
    out = normalize_input(w, "l1")
    assert out.requires_grad and normalize_input(w, "l1") is not out
    out.sum().backward()
    assert w.grad is not None
    key = id(other)
    assert key in _common._INPUT_NORM_CACHE["l1"]
    del other
    gc.collect()
    assert key not in _common._INPUT_NORM_CACHE["l1"]
    # one memo per kind: the same x asked for 'l2' after 'l1' gets the L2 rows, and each kind keeps its own
    y = torch.tensor([[3.0, 4.0]])
    l1 = normalize_input(y, "l1")
    assert torch.allclose(l1, torch.tensor([[3 / 7, 4 / 7]]))
    l2 = normalize_input(y, "l2")
    assert torch.allclose(l2, torch.tensor([[0.6, 0.8]])) and normalize_input(y, "l2") is l2
    assert normalize_input(y, "l1") is l1


def test_gat_input_norm_is_invariant_to_feature_scale():
    """With input_norm='l1' a GAT cannot tell x from 5x (it sees the normalised rows)."""
    g, x = _graph()
    x = x.abs().float()
    torch.manual_seed(0)
    model = MODELS.get("gat")(4, 3, input_norm="l1").eval()
    assert torch.allclose(model(g, x).logits, model(g, 5 * x).logits, atol=1e-6)
    torch.manual_seed(0)
    plain = MODELS.get("gat")(4, 3).eval()
    assert not torch.allclose(plain(g, x).logits, plain(g, 5 * x).logits, atol=1e-3)


@pytest.mark.parametrize("kind", ["l1", "l2"])
@pytest.mark.parametrize("name", ["sage", "gcn"])
def test_input_norm_row_normalises_and_stays_out_of_config_ids(name, kind):
    """SAGE / GCN (input_norm 'l1' / 'l2') see x and 5x alike and equal the plain model fed the normalised
    rows of that kind (not the other's); an unknown kind is refused; at its default (None) the option is
    left out of the resolved hyperparameters, so the config ids of SAGE / GCN records made before it existed
    do not change, while 'l1' / 'l2' enter them."""
    from gkd_bench.methods._common import normalize_input
    from gkd_bench.spec import resolve_model

    g, x = _graph()
    x = x.abs().float()
    torch.manual_seed(0)
    model = MODELS.get(name)(4, 3, hidden=6, input_norm=kind).eval()
    torch.manual_seed(0)
    plain = MODELS.get(name)(4, 3, hidden=6).eval()
    assert torch.allclose(model(g, x).logits, model(g, 5 * x).logits, atol=1e-6)
    assert torch.allclose(model(g, x).logits, plain(g, normalize_input(x, kind)).logits, atol=1e-6)
    other = "l2" if kind == "l1" else "l1"
    assert not torch.allclose(model(g, x).logits, plain(g, normalize_input(x, other)).logits, atol=1e-3)
    assert not torch.allclose(plain(g, x).logits, plain(g, 5 * x).logits, atol=1e-3)
    with pytest.raises(ValueError, match="input_norm must be one of none, l1, l2; got 'l3'"):
        MODELS.get(name)(4, 3, input_norm="l3")
    assert "input_norm" not in resolve_model(name, {"model": name}, {})["hparams"]
    assert "input_norm" not in resolve_model(name, {"model": name, "input_norm": None}, {})["hparams"]
    assert resolve_model(name, {"model": name, "input_norm": kind}, {})["hparams"]["input_norm"] == kind


@pytest.mark.parametrize("name, kw", [("gcn", dict(hidden=6, dropout=0.5)), ("sage", dict(hidden=6, dropout=0.5)),
                                      ("sign", dict(hidden=6, num_hops=2, dropout=0.5, input_dropout=0.0))])
def test_hidden_after_dropout_is_the_dropped_representation(name, kw):
    """hidden_after_dropout=True hands out the hidden layer after dropout (G-CRD's ``out_feat``): the kept
    entries are the pre-dropout ones scaled by 1 / (1 - p), the dropped ones zero; the logits, the
    random draws and eval mode are unchanged."""
    g, x = _graph()
    x = x.float()
    torch.manual_seed(0)
    before = MODELS.get(name)(4, 3, **kw).train()
    after = MODELS.get(name)(4, 3, **kw, hidden_after_dropout=True).train()
    after.load_state_dict(before.state_dict())
    torch.manual_seed(1)
    a = before(g, x)
    torch.manual_seed(1)
    b = after(g, x)
    assert torch.equal(a.logits, b.logits)
    pre, post = a.hidden[-1], b.hidden[-1]
    kept = post != 0
    assert 0 < int(kept.sum()) < int((pre != 0).sum())
    assert torch.allclose(post[kept], pre[kept] / 0.5)
    before.eval(), after.eval()
    assert torch.equal(before(g, x).hidden[-1], after(g, x).hidden[-1])
