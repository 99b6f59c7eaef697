"""GAT options the G-CRD reference models need: linear skips (PyG ``conv(x) + lin(x)``), batch norm,
a separate input dropout; parameter counts against the reference's formulas."""
from __future__ import annotations

import pytest
import torch

import gkd_bench  # noqa: F401  (fills the registries)
from gkd_bench.methods._common import count_parameters
from gkd_bench.registry import MODELS


def _graph(n=12, seed=0, feats=5):
    import dgl

    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (40,), generator=gen)
    dst = torch.randint(0, n, (40,), generator=gen)
    return dgl.graph((src, dst), num_nodes=n), torch.randn(n, feats, generator=gen)


@pytest.mark.parametrize("kw, want", [
    # ppi_pyg/gnn.py (G-CRD): GATConv(50,256,4)+Linear(50,1024), GATConv(1024,256,4)+Linear(1024,1024),
    # GATConv(1024,121,6,concat=False)+Linear(1024,121); every PyG conv and Linear with a bias
    (dict(in_dim=50, num_classes=121, hidden=256, heads=4, num_layers=3, out_heads=6), 3_076_766),
    # 5-layer student: 4 x GATConv(., 68, 2) + GATConv(136, 121, 2, concat=False), Linear skips
    (dict(in_dim=50, num_classes=121, hidden=68, heads=2, num_layers=5, out_heads=2), 176_846),
    # 2-layer student: GATConv(50, 64, 4) + GATConv(256, 121, 4, concat=False), Linear skips
    (dict(in_dim=50, num_classes=121, hidden=64, heads=4, num_layers=2, out_heads=4), 182_714),
])
def test_linear_skip_parameter_counts_equal_the_gcrd_ppi_reference(kw, want):
    assert count_parameters(MODELS.get("gat")(**kw, residual="linear")) == want


def test_other_residual_modes_keep_their_counts():
    """Velickovic's Cora GAT (1433 -> 8 x 8 -> 7): 92,373 parameters. DGL's residual adds a
    Linear(1433, 64) and a Linear(64, 7) (the widths differ), each taking over its layer's bias."""
    plain = MODELS.get("gat")(1433, 7)
    assert count_parameters(plain) == 92_373
    res = MODELS.get("gat")(1433, 7, residual=True)
    assert count_parameters(res) == 92_373 + 1433 * 64 + 64 * 7
    bias_free = MODELS.get("gat")(1433, 7, residual="linear", residual_bias=False)
    # linear skips without bias: + Linear(1433, 64) + Linear(64, 7); the output bias stays 7 entries
    assert count_parameters(bias_free) == 92_373 + 1433 * 64 + 64 * 7


def test_linear_skip_forward_equals_conv_plus_linear():
    """h1 = elu(concat GAT(x) + W0 x); logits = mean_k GAT_k(h1) + W1 h1 + b (eval mode)."""
    from gkd_bench.methods._common import with_self_loops

    g, x = _graph()
    torch.manual_seed(0)
    model = MODELS.get("gat")(5, 3, hidden=4, heads=2, out_heads=2, residual="linear").eval()
    torch.nn.init.normal_(model.out_bias)
    gl = with_self_loops(g)
    with torch.no_grad():
        out = model(g, x)
        h1 = torch.nn.functional.elu(model.layers[0](gl, x).flatten(1) + model.skips[0](x))
        logits = model.layers[1](gl, h1).mean(1) + model.skips[1](h1) + model.out_bias
    assert torch.allclose(out.hidden[0], h1, atol=1e-6)
    assert torch.allclose(out.logits, logits, atol=1e-6)
    assert model.layers[1].bias is None and model.layers[0].res_fc is None


def test_batch_norm_sits_between_the_heads_and_the_activation():
    g, x = _graph()
    torch.manual_seed(0)
    model = MODELS.get("gat")(5, 3, hidden=4, heads=2, norm="batch", act="relu").eval()
    bn = model.norms[0]
    assert isinstance(bn, torch.nn.BatchNorm1d) and bn.num_features == 8
    bn.running_mean.fill_(0.3)
    bn.running_var.fill_(4.0)
    from gkd_bench.methods._common import with_self_loops

    with torch.no_grad():
        out = model(g, x)
        raw = model.layers[0](with_self_loops(g), x).flatten(1)
    want = ((raw - 0.3) / torch.sqrt(torch.tensor(4.0 + bn.eps)) * bn.weight + bn.bias).relu()
    assert torch.allclose(out.hidden[0], want, atol=1e-6)
    with pytest.raises(ValueError, match="norm must be one of"):
        MODELS.get("gat")(5, 3, norm="group")


def test_input_dropout_is_its_own_rate():
    model = MODELS.get("gat")(5, 3, dropout=0.75, input_dropout=0.25)
    assert model.input_dropout.p == 0.25 and model.dropout.p == 0.75
    assert MODELS.get("gat")(5, 3, dropout=0.6).input_dropout.p == 0.6  # default: the same rate
    g, x = _graph()
    torch.manual_seed(0)
    # no dropout anywhere but on the input: training-mode outputs then differ from eval mode only there
    only_input = MODELS.get("gat")(5, 3, dropout=0.0, attn_dropout=0.0, input_dropout=0.5)
    none = MODELS.get("gat")(5, 3, dropout=0.0, attn_dropout=0.0, input_dropout=0.0)
    none.load_state_dict(only_input.state_dict())
    assert torch.allclose(none.train()(g, x).logits, none.eval()(g, x).logits)
    assert not torch.allclose(only_input.train()(g, x).logits, only_input.eval()(g, x).logits)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        MODELS.get("gat")(5, 3, input_dropout=1.0)


def test_linear_skip_takes_the_dense_path_on_sparse_inputs():
    """The sparse first layer does not cover the skip: the model falls back to the dense product and
    its output equals the dense path's (a sparse path without the skip would not)."""
    g, _ = _graph(n=30)
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(30, 200, generator=gen) < 0.02).float()  # 2% non-zero bag of words
    torch.manual_seed(0)
    model = MODELS.get("gat")(200, 3, hidden=4, heads=2, residual="linear").eval()
    with torch.no_grad():
        a = model(g, x).logits
        model.sparse_first_layer = False
        b = model(g, x).logits
    assert torch.allclose(a, b, atol=1e-6)


def test_bad_residual_is_an_error():
    with pytest.raises(ValueError, match="residual must be false, true or 'linear'; got 'skip'"):
        MODELS.get("gat")(5, 3, residual="skip")


def test_new_options_stay_out_of_config_ids_at_their_defaults():
    """Records of GATs made before these options existed keep their config ids: at the default the
    options are not in the resolved hyperparameters; set to anything else they are."""
    from gkd_bench.spec import resolve_model

    train = {"epochs": 10, "lr": 0.01}
    plain = resolve_model("gat", {"model": "gat", "hidden": 8}, train)["hparams"]
    assert not {"norm", "input_dropout", "residual_bias"} & set(plain)
    explicit = resolve_model("gat", {"model": "gat", "hidden": 8, "norm": None, "residual_bias": True}, train)
    assert explicit["hparams"] == plain
    changed = resolve_model("gat", {"model": "gat", "hidden": 8, "norm": "batch", "input_dropout": 0.25,
                                    "residual_bias": False}, train)["hparams"]
    assert changed["norm"] == "batch" and changed["input_dropout"] == 0.25 and changed["residual_bias"] is False
    assert {k: v for k, v in changed.items() if k not in ("norm", "input_dropout", "residual_bias")} == plain
    assert count_parameters(MODELS.get("gat")(5, 3, **plain)) == count_parameters(MODELS.get("gat")(5, 3, hidden=8))


def test_train_mode_skip_sees_the_dropped_input_and_norm_precedes_the_activation():
    """Train mode, dense input: the skip and the conv read the same dropped input (input_dropout on x,
    dropout between layers), the norm acts on conv + skip, then ELU; replayed with the same RNG draws."""
    from torch.nn import functional as F

    from gkd_bench.methods._common import with_self_loops

    g, x = _graph()
    torch.manual_seed(0)
    model = MODELS.get("gat")(5, 3, hidden=4, heads=2, out_heads=2, residual="linear", norm="layer",
                              dropout=0.4, input_dropout=0.3, attn_dropout=0.0).train()
    torch.nn.init.normal_(model.norms[0].weight)
    gl = with_self_loops(g)
    torch.manual_seed(5)
    out = model(g, x)
    torch.manual_seed(5)
    x0 = F.dropout(x, 0.3, True)
    h1 = F.elu(model.norms[0](model.layers[0](gl, x0).flatten(1) + model.skips[0](x0)))
    h1d = F.dropout(h1, 0.4, True)
    logits = model.layers[1](gl, h1d).mean(1) + model.skips[1](h1d) + model.out_bias
    assert torch.allclose(out.hidden[0], h1, atol=1e-6) and torch.allclose(out.logits, logits, atol=1e-6)
    # the norm after the skip matters: normalising the conv part alone gives other values
    alt = F.elu(model.norms[0](model.layers[0](gl, x0).flatten(1)) + model.skips[0](x0))
    assert not torch.allclose(alt, h1, atol=1e-3)


def test_residual_none_means_no_residual():
    torch.manual_seed(0)
    a = MODELS.get("gat")(5, 3, residual=None)
    torch.manual_seed(0)
    b = MODELS.get("gat")(5, 3, residual=False)
    assert a.state_dict().keys() == b.state_dict().keys() and a.skips is None and a.layers[0].res_fc is None
