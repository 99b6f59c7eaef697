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
    assert not {"norm", "input_dropout", "residual_bias", "attn_dst", "symmetric_norm", "edge_drop",
                "conv_bias", "skip_init"} & set(plain)
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


# ---------------------------------------------------------------- attention variants (arxiv_dgl/models.py)
def test_arxiv_reference_teacher_has_the_reference_parameter_count():
    """arxiv_dgl/gat.py prints "Number of params: 1441580" for its teacher: 128 features + 40 label
    channels, 3 x 250 x 3 heads, one output head, batch norm, bias-free linear residuals, no a_r, no
    conv bias, one 40-entry bias after the head mean. By hand: layer 0 168*750 (fc) + 750 (a_l) +
    168*750 (res) + 1500 (bn); layer 1 750*750 + 750 + 750*750 + 1500; layer 2 750*40 + 40 + 750*40 + 40."""
    model = MODELS.get("gat")(168, 40, hidden=250, heads=3, num_layers=3, out_heads=1, norm="batch",
                              residual="linear", residual_bias=False, attn_dst=False, conv_bias=False)
    want = (168 * 750 * 2 + 750 + 1500) + (750 * 750 * 2 + 750 + 1500) + (750 * 40 * 2 + 40 + 40)
    assert want == 1_441_580
    assert count_parameters(model) == want
    assert all(layer.attn_r is None and layer.bias is None for layer in model.layers[:-1])


def _dense_attention(model, layer, gl, h, kept=None):
    """Independent dense computation of one attention layer's ``[N, heads, out]`` (no residual, no bias):
    scores s_ij = LeakyReLU(a_l . z_j (+ a_r . W h_i)) with z_j = W h_j * d_out(j)^-1/2 under
    symmetric_norm, softmax over i's in-edges (only ``kept`` edges when given), out_i = sum_j alpha_ij z_j,
    times d_in(i)^+1/2 under symmetric_norm."""
    src, dst = gl.edges()
    n, heads, d = gl.num_nodes(), layer._num_heads, layer._out_feats
    wh = (h @ layer.fc.weight.t()).view(n, heads, d)
    z = wh * gl.out_degrees().float().pow(-0.5).view(-1, 1, 1) if model.symmetric_norm else wh
    s = (z * layer.attn_l).sum(-1)[src]                              # [E, heads]
    if layer.attn_r is not None:
        s = s + (wh * layer.attn_r).sum(-1)[dst]
    s = torch.nn.functional.leaky_relu(s, 0.2)
    mask = torch.zeros(len(src), dtype=torch.bool)
    mask[kept if kept is not None else torch.arange(len(src))] = True
    out = torch.zeros(n, heads, d)
    for i in range(n):
        e = ((dst == i) & mask).nonzero().flatten()
        if len(e):
            alpha = torch.softmax(s[e], dim=0)                        # [deg, heads]
            out[i] = (alpha.unsqueeze(-1) * z[src[e]]).sum(0)
    if model.symmetric_norm:
        out = out * gl.in_degrees().float().pow(0.5).view(-1, 1, 1)
    return out


@pytest.mark.parametrize("attn_dst, symmetric_norm", [(False, False), (True, True), (False, True)])
def test_attention_variants_match_a_dense_computation(attn_dst, symmetric_norm):
    from gkd_bench.methods._common import with_self_loops

    g, x = _graph(n=12, feats=5)
    torch.manual_seed(0)
    model = MODELS.get("gat")(5, 3, hidden=4, heads=2, attn_dropout=0.0, attn_dst=attn_dst,
                              symmetric_norm=symmetric_norm, conv_bias=False).eval()
    gl = with_self_loops(g)
    layer = model.layers[0]
    with torch.no_grad():
        got = model._layer(0, gl, x)
        want = _dense_attention(model, layer, gl, x)
    assert torch.allclose(got, want, atol=1e-5)
    # the variant changes the output: the plain GATConv of the same weights differs
    if not attn_dst:
        layer.attn_r = torch.nn.Parameter(torch.randn(1, 2, 4))
    model.symmetric_norm = False
    with torch.no_grad():
        plain = model._layer(0, gl, x)
    assert not torch.allclose(plain, got, atol=1e-3)


def test_edge_drop_leaves_a_random_share_out_of_the_softmax_in_training_only():
    """Training: int(E * p) edges of a fresh random permutation get weight 0 and the softmax runs over
    the rest (replayed with the same RNG draw); eval: every edge, as edge_drop 0."""
    from gkd_bench.methods._common import with_self_loops

    g, x = _graph(n=12, feats=5)
    torch.manual_seed(0)
    model = MODELS.get("gat")(5, 3, hidden=4, heads=2, attn_dropout=0.0, edge_drop=0.3)
    gl = with_self_loops(g)
    m = gl.num_edges()
    with torch.no_grad():
        torch.manual_seed(7)
        got = model.train()._layer(0, gl, x) - model.layers[0].bias.view(1, 2, 4)
        torch.manual_seed(7)
        kept = torch.randperm(m)[int(m * 0.3):]
        assert len(kept) == m - int(m * 0.3)
        want = _dense_attention(model, model.layers[0], gl, x, kept)
        assert torch.allclose(got, want, atol=1e-5)
        full = model.eval()._layer(0, gl, x) - model.layers[0].bias.view(1, 2, 4)
        assert torch.allclose(full, _dense_attention(model, model.layers[0], gl, x), atol=1e-5)
    assert not torch.allclose(got, full, atol=1e-3)


def _gatconv_forward(model, gl, x):
    """The model's forward written with DGL's own ``GATConv.forward`` per layer (no skips, norms or
    variants): what GAT ran before every layer went through ``_attend``."""
    h, last = x, len(model.layers) - 1
    for i, layer in enumerate(model.layers):
        h = layer(gl, h if i == 0 else model.dropout(h))
        h = h.flatten(1) if i < last else h.mean(1)
        if i < last:
            h = model.act(h)
    return h


@pytest.mark.parametrize("residual", [False, True])
def test_attend_without_variants_equals_gatconv_bit_for_bit_and_sparse_path_is_unchanged(residual):
    """_attend reproduces GATConv.forward (DGL residual and bias included) exactly, with the fast
    weighted sum and with DGL's update_all, in eval and in a training step (attention dropout drawn
    from the same RNG state, gradients equal); the sparse first layer stays within float rounding."""
    g, _ = _graph(n=30)
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(30, 200, generator=gen) < 0.02).float()
    from gkd_bench.methods._common import with_self_loops

    torch.manual_seed(0)
    model = MODELS.get("gat")(200, 3, hidden=4, heads=2, num_layers=3, residual=residual,
                              dropout=0.3, input_dropout=0.0, attn_dropout=0.5)
    for layer in model.layers:
        torch.nn.init.normal_(layer.bias if layer.bias is not None else layer.res_fc.bias)
    gl = with_self_loops(g)
    model.eval()
    with torch.no_grad():
        sparse = model(g, x).logits
        model.sparse_first_layer = False
        want = _gatconv_forward(model, gl, x)
        assert torch.equal(model(g, x).logits, want)
        model.fast_aggregation = False
        assert torch.equal(model(g, x).logits, want)
    assert torch.allclose(sparse, want, atol=1e-6)
    model.train()
    grads = []
    for run in ("gatconv", "fast", "dgl"):
        model.zero_grad()
        model.fast_aggregation = run == "fast"
        torch.manual_seed(3)
        out = _gatconv_forward(model, gl, x) if run == "gatconv" else model(g, x).logits
        out.square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for other in grads[1:]:
        assert all(torch.equal(a, b) for a, b in zip(grads[0], other))


def test_bad_edge_drop_is_an_error():
    with pytest.raises(ValueError, match=r"edge_drop must be in \[0, 1\), got 1.0"):
        MODELS.get("gat")(5, 3, edge_drop=1.0)


def test_symmetric_norm_scales_the_sum_before_the_residual_and_bias():
    """Reference order (arxiv_dgl/models.py GATConv.forward): sum * d_in^1/2, then + residual, then (our DGL
    layer's) bias. DGL's residual=True path with symmetric_norm, against the dense computation."""
    from gkd_bench.methods._common import with_self_loops

    g, x = _graph(n=12, feats=5)
    torch.manual_seed(0)
    model = MODELS.get("gat")(5, 3, hidden=4, heads=2, attn_dropout=0.0, symmetric_norm=True, residual=True).eval()
    layer = model.layers[0]
    torch.nn.init.normal_(layer.res_fc.weight)
    gl = with_self_loops(g)
    with torch.no_grad():
        got = model._layer(0, gl, x)
        res = layer.res_fc(x).view(-1, 2, 4)
        want = _dense_attention(model, layer, gl, x) + res
        if layer.bias is not None:
            want = want + layer.bias.view(1, 2, 4)
    assert torch.allclose(got, want, atol=1e-5)


def test_skip_init_xavier_draws_the_skips_as_the_reference_res_fc():
    """skip_init: xavier: xavier_normal_ with ReLU gain (std = gain * sqrt(2 / (fan_in + fan_out))); the
    default keeps nn.Linear's uniform init (bounded by 1/sqrt(fan_in)); bad values are errors."""
    import math

    torch.manual_seed(0)
    x = MODELS.get("gat")(600, 3, hidden=100, heads=3, residual="linear", skip_init="xavier")
    torch.manual_seed(0)
    d = MODELS.get("gat")(600, 3, hidden=100, heads=3, residual="linear")
    w = x.skips[0].weight.detach()
    want = math.sqrt(2.0) * math.sqrt(2.0 / (600 + 300))
    assert abs(float(w.std()) - want) < 0.05 * want
    assert float(d.skips[0].weight.detach().abs().max()) <= 1 / math.sqrt(600) + 1e-6
    assert float(w.abs().max()) > 1 / math.sqrt(600)
    with pytest.raises(ValueError, match="skip_init must be 'torch' or 'xavier', got 'he'"):
        MODELS.get("gat")(5, 3, residual="linear", skip_init="he")


def test_weighted_sum_equals_dgl_update_all_bit_for_bit_values_and_gradients():
    """weighted_sum's CPU path vs DGL's update_all(u_mul_e, sum): equal outputs, feature and edge-weight
    gradients (torch.equal) on a graph whose rows list edges out of id order (self-loops appended last,
    node 11 without in-edges); both equal a per-node loop (out[i, h] = sum_e a[e, h] * feat[src_e, h])."""
    import dgl
    import dgl.function as fn

    from gkd_bench.methods._common import weighted_sum

    g, _ = _graph(n=12)
    g = dgl.add_self_loop(g)
    g = dgl.remove_edges(g, g.in_edges(11, form="eid"))
    assert g.in_degrees(11) == 0
    gen = torch.Generator().manual_seed(2)
    feat = torch.randn(12, 3, 5, generator=gen, requires_grad=True)
    a = torch.rand(g.num_edges(), 3, 1, generator=gen, requires_grad=True)
    grad_out = torch.randn(12, 3, 5, generator=gen)
    results = []
    for fast in (True, False):
        feat.grad = a.grad = None
        out = weighted_sum(g, feat, a, fast=fast)
        out.backward(grad_out)
        results.append((out.detach(), feat.grad.clone(), a.grad.clone()))
    feat.grad = a.grad = None
    with g.local_scope():
        g.srcdata["ft"], g.edata["a"] = feat, a
        g.update_all(fn.u_mul_e("ft", "a", "m"), fn.sum("m", "ft"))
        g.dstdata["ft"].backward(grad_out)
        results.append((g.dstdata["ft"].detach(), feat.grad.clone(), a.grad.clone()))
    for other in results[1:]:
        assert all(torch.equal(u, v) for u, v in zip(results[0], other))
    src, dst = g.edges()
    want = torch.zeros(12, 3, 5)
    for e in range(g.num_edges()):
        want[dst[e]] += a[e].detach() * feat[src[e]].detach()
    assert torch.allclose(results[0][0], want, atol=1e-6)
    assert torch.equal(results[0][0][11], torch.zeros(3, 5))


def test_weighted_sum_rejects_bad_shapes():
    from gkd_bench.methods._common import weighted_sum

    g, _ = _graph(n=12)
    with pytest.raises(ValueError, match=r"feat must be \[12, H, D\], got \(12, 15\)"):
        weighted_sum(g, torch.zeros(12, 15), torch.zeros(g.num_edges(), 3, 1))
    with pytest.raises(ValueError, match=r"a must be \[40, 3, 1\], got \(40, 3\)"):
        weighted_sum(g, torch.zeros(12, 3, 5), torch.zeros(40, 3))
