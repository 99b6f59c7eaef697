"""The sparse first layer of GCN, GAT and SAGE (``sparse_input_matmul``) equals the dense path."""
from __future__ import annotations

import os

import pytest
import torch

from conftest import DATA_ROOT, requires_data
from gkd_bench.methods import _common
from gkd_bench.methods._common import InputDropout, sparse_input_matmul, sparse_input_values
from gkd_bench.methods.gat import GAT
from gkd_bench.methods.gcn import GCN
from gkd_bench.methods.mlp import MLP
from gkd_bench.methods.sa_mlp import SAMLP
from gkd_bench.methods.sage import SAGE


def sparse_graph(n=120, f=400, density=0.02, seed=0):
    import dgl

    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (5 * n,), generator=gen)
    dst = torch.randint(0, n, (5 * n,), generator=gen)
    g = dgl.to_simple(dgl.graph((torch.cat([src, dst]), torch.cat([dst, src])), num_nodes=n))
    x = (torch.rand(n, f, generator=gen) < density).float() * torch.rand(n, f, generator=gen)
    x[3] = 0.0  # an all-zero row (l1 / l2 normalisation keeps it zero)
    return g, x


def models(f, c=4):
    return {
        "gcn": lambda: GCN(f, c, 16, 3, 0.5),
        "gcn-batchnorm": lambda: GCN(f, c, 16, 2, 0.5, norm="batch", input_dropout=0.3),
        "gcn-l1": lambda: GCN(f, c, 16, 2, 0.5, input_norm="l1"),
        "gcn-l2": lambda: GCN(f, c, 16, 2, 0.5, input_norm="l2"),
        "gat-l1": lambda: GAT(f, c, 8, 2, 4, 1, 0.6, 0.6, input_norm="l1"),
        "gat-l2": lambda: GAT(f, c, 8, 2, 4, 1, 0.6, 0.6, input_norm="l2"),
        "gat-residual": lambda: GAT(f, c, 8, 3, 4, 2, 0.5, 0.3, residual=True, input_norm="l1"),
        "sage-mean": lambda: SAGE(f, c, 16, 3, 0.5),
        "sage-gcn-batchnorm": lambda: SAGE(f, c, 16, 2, 0.2, aggregator="gcn", norm="batch"),
        "sage-l1": lambda: SAGE(f, c, 16, 2, 0.5, input_norm="l1"),
        "sage-l2": lambda: SAGE(f, c, 16, 2, 0.5, input_norm="l2"),
        "sage-gcn-l1": lambda: SAGE(f, c, 16, 3, 0.5, aggregator="gcn", input_norm="l1"),
    }


def run(model, g, x, sparse: bool, seed=7):
    """Forward + backward of a fixed loss with the global RNG at ``seed``; outputs, gradients, path taken."""
    model.sparse_first_layer = sparse
    calls = []
    orig = _common.pattern_matmul

    def spy(*a):
        calls.append(1)
        return orig(*a)

    import gkd_bench.methods.gat as gat_mod
    import gkd_bench.methods.gcn as gcn_mod
    import gkd_bench.methods.sage as sage_mod

    gat_mod.pattern_matmul, _common.pattern_matmul = spy, spy
    gcn_sparse = gcn_mod.sparse_input_matmul
    def gcn_spy(*a, **k):
        out = gcn_sparse(*a, **k)
        if out is not None:
            calls.append(1)
        return out

    gcn_mod.sparse_input_matmul = sage_mod.sparse_input_matmul = gcn_spy
    try:
        torch.manual_seed(seed)
        out = model(g, x)
        model.zero_grad()
        (out.logits.square().sum() + sum(h.sin().sum() for h in out.hidden)).backward()
    finally:
        gat_mod.pattern_matmul, _common.pattern_matmul = orig, orig
        gcn_mod.sparse_input_matmul = sage_mod.sparse_input_matmul = gcn_sparse
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    after = torch.rand(3)  # the RNG stream after the step
    return (out.logits.detach(), *[h.detach() for h in out.hidden]), grads, after, bool(calls)


def assert_same(a, b, atol=1e-5, rtol=1e-4):
    outs_a, grads_a, rng_a, _ = a
    outs_b, grads_b, rng_b, _ = b
    assert len(outs_a) == len(outs_b)
    for u, v in zip(outs_a, outs_b):
        torch.testing.assert_close(u, v, atol=atol, rtol=rtol)
    assert grads_a.keys() == grads_b.keys()
    # float rounding scales with the largest gradient (a bias before batch norm has gradient ~0 + noise)
    scale = max(1.0, max(float(v.abs().max()) for v in grads_b.values()))
    for k in grads_a:
        torch.testing.assert_close(grads_a[k], grads_b[k], atol=atol * scale, rtol=rtol, msg=k)
    assert torch.equal(rng_a, rng_b), "the sparse path must consume the global RNG as InputDropout does"


@pytest.mark.parametrize("name", list(models(400)))
@pytest.mark.parametrize("training", [False, True])
def test_sparse_path_equals_dense_path_outputs_gradients_and_rng(name, training):
    g, x = sparse_graph()
    torch.manual_seed(0)
    model = models(x.shape[1])[name]().train(training)
    sparse = run(model, g, x, True)
    dense = run(model, g, x, False)
    assert sparse[3] and not dense[3], "the sparse run must take the sparse path, the dense run the old one"
    assert_same(sparse, dense)


def test_training_mask_is_inputdropouts_mask():
    """values == InputDropout(x) at the non-zeros for the same RNG state, and the product equals the dense one."""
    _, x = sparse_graph()
    w = torch.randn(x.shape[1], 5, requires_grad=True)
    torch.manual_seed(3)
    dense_in = InputDropout(0.5).train()(x)
    torch.manual_seed(3)
    pattern, values = sparse_input_values(x, 0.5, True)
    rebuilt = torch.zeros(x.numel()).index_put((pattern.idx,), values).view_as(x)
    assert torch.equal(rebuilt, dense_in)
    assert 0 < int((values == 0).sum()) < values.numel()  # some dropped, some kept
    torch.manual_seed(3)
    out = sparse_input_matmul(x, w, 0.5, True)
    out.square().sum().backward()
    gw = w.grad.clone()
    w.grad = None
    ref = dense_in @ w
    ref.square().sum().backward()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gw, w.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_gradient_flows_to_x_values_and_row_norm_matches(kind):
    _, x = sparse_graph(n=30, f=50, density=0.1)
    w = torch.randn(50, 3)
    xs = x.clone().requires_grad_(True)
    xd = x.clone().requires_grad_(True)
    out = sparse_input_matmul(xs, w, input_norm=kind)
    ref = _common.normalize_input(xd, kind) @ w
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    out.sin().sum().backward()
    ref.sin().sum().backward()
    nz = x != 0
    torch.testing.assert_close(xs.grad[nz], xd.grad[nz], atol=1e-6, rtol=1e-5)
    assert torch.all(xs.grad[~nz] == 0)


def test_l2_norm_of_an_all_zero_support_row_has_a_finite_gradient():
    """A row that is zero in x but has entries in ``support`` (the dense path's dropout support) gives
    zero values: its L2 norm clamps at F.normalize's eps (no 0 / 0, no infinite gradient of sqrt at 0)."""
    _, x = sparse_graph(n=30, f=50, density=0.05)
    support = x.clone()
    support[3, :5] = 1.0  # x[3] is all zero
    w = torch.randn(50, 3)
    xs = x.clone().requires_grad_(True)
    xd = x.clone().requires_grad_(True)
    out = sparse_input_matmul(xs, w, input_norm="l2", support=support)
    assert torch.all(out[3] == 0)
    out.sum().backward()
    assert torch.isfinite(xs.grad).all()
    ref = torch.nn.functional.normalize(xd, p=2.0, dim=1) @ w
    torch.testing.assert_close(out.detach(), ref.detach(), atol=1e-6, rtol=1e-5)
    ref.sum().backward()  # the same eps as F.normalize: equal gradients, the all-zero row's included (~1e12)
    on = support != 0
    assert xd.grad[3, :5].abs().max() > 1e6
    torch.testing.assert_close(xs.grad[on], xd.grad[on], atol=1e-6, rtol=1e-5)


def test_a_dense_input_is_never_indexed_entry_by_entry(monkeypatch):
    """Noisy (dense) features are counted, not indexed: no index of every entry is allocated."""
    nonzero_sizes = []
    real = torch.nonzero

    def spy(t, *a, **k):
        nonzero_sizes.append(t.numel())
        return real(t, *a, **k)

    monkeypatch.setattr(torch, "nonzero", spy)
    dense = torch.randn(300, 50)
    assert _common.sparse_pattern(dense) is None and nonzero_sizes == []
    g, x = sparse_graph(density=0.05)
    assert _common.sparse_pattern(x) is not None and nonzero_sizes == [x.numel()]


def test_dense_input_takes_the_old_path(monkeypatch):
    g, x = sparse_graph(density=0.5)
    assert sparse_input_matmul(x, torch.randn(x.shape[1], 3)) is None
    for name, make in models(x.shape[1]).items():
        model = make().train()
        out = run(model, g, x, True)
        assert not out[3], name
        assert_same(out, run(model, g, x, False))
    # the threshold is the knob: lowered below the density, a sparse input goes dense
    g, x = sparse_graph(density=0.05)
    assert sparse_input_matmul(x, torch.randn(x.shape[1], 3)) is not None
    monkeypatch.setattr(_common, "SPARSE_MATMUL_MAX_DENSITY", 0.01)
    assert sparse_input_matmul(x, torch.randn(x.shape[1], 3)) is None
    model = GCN(x.shape[1], 4, 16, 2, 0.5).train()
    assert not run(model, g, x, True)[3]


@pytest.mark.parametrize("name", ["gcn", "gat-l1", "sage-mean"])
def test_input_requiring_grad_takes_the_dense_path_with_a_dense_input_gradient(name):
    g, x = sparse_graph()
    model = models(x.shape[1])[name]().eval()
    xg = x.clone().requires_grad_(True)
    out = run(model, g, xg, True)
    assert not out[3]
    assert (xg.grad[x == 0] != 0).any()  # the gradient at zero entries, as the dense layer gives it
    with torch.no_grad():
        assert run_no_grad(model, g, xg)


def run_no_grad(model, g, x):
    """Under no_grad an ``x`` requiring grad may take the sparse path: True when it does."""
    calls = []
    import gkd_bench.methods.gat as gat_mod
    import gkd_bench.methods.gcn as gcn_mod
    import gkd_bench.methods.sage as sage_mod

    orig_gat, orig_gcn = gat_mod.pattern_matmul, gcn_mod.sparse_input_matmul
    gat_mod.pattern_matmul = lambda *a: (calls.append(1), orig_gat(*a))[1]
    gcn_mod.sparse_input_matmul = sage_mod.sparse_input_matmul = (
        lambda *a, **k: (calls.append(1), orig_gcn(*a, **k))[1])
    try:
        model.sparse_first_layer = True
        model(g, x)
    finally:
        gat_mod.pattern_matmul, gcn_mod.sparse_input_matmul = orig_gat, orig_gcn
        sage_mod.sparse_input_matmul = orig_gcn
    return bool(calls)


@pytest.mark.parametrize("name", ["gcn", "gat-residual", "sage-gcn-batchnorm"])
def test_inference_mode_with_an_inference_tensor_input(name):
    """Inference tensors have no version counter: the sparse path must still work (not memoised)."""
    g, x = sparse_graph()
    model = models(x.shape[1])[name]().eval()
    with torch.no_grad():
        model.sparse_first_layer = False
        ref = model(g, x).logits
    with torch.inference_mode():
        xi = x.clone()
        assert xi.is_inference()
        assert run_no_grad(model, g, xi)
        out = model(g, xi).logits
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["l1", "l2"])
@pytest.mark.parametrize("arch", ["gcn", "sage", "gat"])
def test_input_norm_under_inference_mode_dense_input(arch, kind):
    """The latency scenarios call the model under torch.inference_mode, on inference tensors and on the
    ordinary x: the row-normalisation memo (dense path: x 40% non-zero) must neither read the missing
    version counter nor keep an inference tensor, with the memo empty or filled, and training afterwards
    must still work (regression: every amazon-photo run with timing failed at d32de29)."""
    g, x = sparse_graph(n=40, f=30, density=0.4)
    x = x.clone()  # a tensor no earlier test memoised
    model = {"gcn": lambda: GCN(30, 4, 16, 2, 0.5, input_norm=kind),
             "sage": lambda: SAGE(30, 4, 16, 2, 0.5, input_norm=kind),
             "gat": lambda: GAT(30, 4, 8, 2, 4, 1, 0.6, 0.6, input_norm=kind)}[arch]().eval()
    with torch.no_grad():
        ref = model(g, x.clone()).logits
    with torch.inference_mode():
        torch.testing.assert_close(model(g, x).logits, ref)  # the ordinary x, memo empty
        xi = x.clone()
        assert xi.is_inference()
        torch.testing.assert_close(model(g, xi).logits, ref)
    model.train()
    model(g, x).logits.sum().backward()  # training after the inference calls: no inference tensor was kept
    model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(model(g, x).logits, ref)  # memo filled by the training call: a hit


def test_bad_arguments_raise():
    _, x = sparse_graph()
    with pytest.raises(ValueError):
        sparse_input_matmul(x, torch.randn(x.shape[1], 3), p=1.0)
    with pytest.raises(ValueError):
        sparse_input_matmul(x, torch.randn(x.shape[1] + 1, 3))
    with pytest.raises(ValueError):
        sparse_input_matmul(x, torch.randn(x.shape[1], 3), input_norm="l3")
    with pytest.raises(ValueError):
        sparse_input_matmul(x, torch.randn(x.shape[1], 3), support=x[:-1])


@pytest.mark.parametrize("name", list(models(400)))
def test_state_dict_unchanged_and_sparse_trained_model_loads_into_the_dense_path(name):
    from dgl.nn import GATConv, GraphConv, SAGEConv

    g, x = sparse_graph()
    y = torch.randint(0, 4, (x.shape[0],))
    torch.manual_seed(1)
    model = models(x.shape[1])[name]()
    keys = {k: v.shape for k, v in model.state_dict().items()}
    # the reference: the same layers built directly from DGL modules, before this change
    first = model.layers[0]
    assert isinstance(first, (GATConv, GraphConv, SAGEConv))
    expected = ({"weight", "bias"} if isinstance(first, GraphConv)
                else {n for n, _ in first.named_parameters()})
    assert {k.split(".", 2)[2] for k in keys if k.startswith("layers.0.")} >= expected
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(g, x).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert {k: v.shape for k, v in model.state_dict().items()} == keys
    torch.manual_seed(1)
    fresh = models(x.shape[1])[name]()
    fresh.load_state_dict(model.state_dict())
    fresh.sparse_first_layer = False
    model.eval(), fresh.eval()
    a, b = model(g, x), fresh(g, x)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(a.logits, models(x.shape[1])[name]().eval()(g, x).logits, atol=1e-3)


@requires_data("planetoid/ind.cora.x")
@pytest.mark.parametrize("name", ["gcn", "gat-l1", "gat-residual", "sage-mean", "sage-gcn-batchnorm"])
def test_real_cora_eval_sparse_equals_dense(name):
    from gkd_bench.registry import DATASETS

    data = DATASETS.get("cora")(root=DATA_ROOT, protocol="planetoid", seed=0)
    x, g = data.x, data.graph
    assert 0 < float((x != 0).float().mean()) < _common.SPARSE_MATMUL_MAX_DENSITY
    torch.manual_seed(0)
    model = models(x.shape[1], data.num_classes)[name]().eval()
    sparse = run(model, g, x, True)
    dense = run(model, g, x, False)
    assert sparse[3] and not dense[3]
    assert_same(sparse, dense, atol=1e-5, rtol=1e-4)


def test_sage_blocks_graphs_without_edges_and_other_aggregators_take_the_dense_path():
    """Mini-batch blocks, an edgeless graph and the pool aggregator use DGL's SAGEConv as before."""
    import dgl

    g, x = sparse_graph()
    torch.manual_seed(0)
    model = SAGE(x.shape[1], 4, 16, 2, 0.0).eval()
    assert run_no_grad(model, g, x)
    sampler = dgl.dataloading.MultiLayerFullNeighborSampler(2)
    src, dst, blocks = sampler.sample_blocks(g, torch.arange(10))
    assert not run_no_grad(model, blocks, x[src])
    with torch.no_grad():
        full = model(g, x).logits[:10]
        torch.testing.assert_close(model(blocks, x[src]).logits, full, atol=1e-5, rtol=1e-4)
    empty = dgl.graph(([], []), num_nodes=x.shape[0])
    assert not run_no_grad(model, empty, x)
    pool = SAGE(x.shape[1], 4, 16, 2, 0.0, aggregator="pool").eval()
    assert not run_no_grad(pool, g, x)


def graph_free_models(f, c=4):
    return {
        "mlp": lambda: MLP(f, c, 16, 3, 0.5, input_dropout=0.3),
        "mlp-batchnorm": lambda: MLP(f, c, 16, 2, 0.2, norm="batch"),
        "sa_mlp": lambda: SAMLP(f, c, 16, 0.5),
    }


def run_graph_free(model, g, x, sparse: bool, seed=7):
    """As :func:`run` for MLP / SA-MLP; the path taken is read from a spy on ``sparse_input_matmul``."""
    calls = []
    orig = _common.sparse_input_matmul

    def spy(*a, **k):
        out = orig(*a, **k)
        calls.append(out is not None)
        return out

    _common.sparse_input_matmul = spy
    model.sparse_first_layer = sparse
    try:
        torch.manual_seed(seed)
        out = model(g, x)
        model.zero_grad()
        (out.logits.square().sum() + sum(h.sin().sum() for h in out.hidden)).backward()
    finally:
        _common.sparse_input_matmul = orig
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    after = torch.rand(3)
    return (out.logits.detach(), *[h.detach() for h in out.hidden]), grads, after, any(calls)


@pytest.mark.parametrize("name", list(graph_free_models(400)))
@pytest.mark.parametrize("training", [False, True])
def test_graph_free_sparse_first_layer_equals_dense(name, training):
    """MLP and SA-MLP's feature encoder: the same outputs, gradients and dropout masks from the non-zeros."""
    g, x = sparse_graph(n=_common.SPARSE_MIN_ROWS + 76)
    torch.manual_seed(0)
    model = graph_free_models(x.shape[1])[name]().train(training)
    with torch.no_grad():
        model(g, x)  # SA-MLP binds the graph (and initialises W_A) on its first call
    sparse = run_graph_free(model, g, x, True)
    dense = run_graph_free(model, g, x, False)
    assert sparse[3] and not dense[3]
    assert_same(sparse, dense)


def test_sa_mlp_predictor_first_layer_sparse_equals_dense():
    """LSEA's g(x) (every node unseen, sa_mlp_ind stage 2): its first layer from the non-zeros gives the
    same outputs, gradients (g's included) and dropout masks as the dense product."""
    g, x = sparse_graph(n=_common.SPARSE_MIN_ROWS + 76)
    torch.manual_seed(0)
    model = SAMLP(x.shape[1], 4, 16, 0.5, unseen="predictor").train()
    with torch.no_grad():
        model(g, x)
    with model.treat_all_as_unseen():
        sparse = run_graph_free(model, g, x, True)
        dense = run_graph_free(model, g, x, False)
    assert sparse[3] and not dense[3]
    assert {"predictor.0.weight", "predictor.2.weight"} <= set(sparse[1])
    assert_same(sparse, dense)


@pytest.mark.parametrize("name", list(graph_free_models(400)))
def test_graph_free_few_rows_dense_inputs_and_grad_inputs_take_the_dense_path(name):
    """Online inference of a few nodes, dense features and an input that requires grad stay dense."""
    def path(n, density=0.02, grad=False):
        g, x = sparse_graph(n=n, density=density)
        torch.manual_seed(0)
        model = graph_free_models(x.shape[1])[name]().eval()  # SA-MLP binds one graph size
        return run_graph_free(model, g, x.clone().requires_grad_(grad), True)[3]

    assert not path(_common.SPARSE_MIN_ROWS - 1)
    assert not path(_common.SPARSE_MIN_ROWS, density=0.5)
    assert path(_common.SPARSE_MIN_ROWS)
    assert not path(_common.SPARSE_MIN_ROWS, grad=True)


def test_a_stream_of_fresh_inputs_leaves_no_cached_index_or_pattern_behind():
    """Online inference and mini-batches feed a new tensor per call: once it is freed, its non-zero
    index and CSR pattern must be freed too (a long sweep grew to 17 GB when the pattern cache held
    its own index alive)."""
    import gc
    import weakref

    _, x = sparse_graph(n=1100)
    w = torch.randn(x.shape[1], 8)
    gc.collect()
    before = len(_common._NONZERO_CACHE)
    refs = []
    for i in range(20):
        rows = x[torch.randperm(x.shape[0])[:1050]]  # a fresh tensor, as x[nodes] in online@1024
        assert sparse_input_matmul(rows, w) is not None
        pattern = _common.sparse_pattern(rows)
        assert pattern is _common.sparse_pattern(rows)  # memoised while the tensor lives
        refs.append(weakref.ref(pattern.idx))
        del rows, pattern
    gc.collect()
    assert len(_common._NONZERO_CACHE) == before
    assert all(r() is None for r in refs)


def test_gathered_values_are_memoised_per_tensor_version_and_give_the_same_gradients():
    """A full-batch model reads the same ``x`` every epoch: its non-zero values (and their transposed
    order for the weight gradient) are gathered once. An in-place change of ``x`` must gather again;
    values of another tensor read through ``support``, or of an ``x`` that wants a gradient, are not
    memoised; the weight gradient equals the dense product's."""
    _, x = sparse_graph()
    w = torch.randn(x.shape[1], 8, requires_grad=True)
    pattern, values = sparse_input_values(x)
    assert sparse_input_values(x)[1] is values                      # memoised
    assert torch.equal(values, x.reshape(-1)[pattern.idx])
    assert torch.equal(pattern.memo[1], values[pattern.perm])       # the weight gradient's order
    (sparse_input_matmul(x, w) ** 2).sum().backward()
    (sparse_input_matmul(x, w) ** 2).sum().backward()                # both backwards from the memo
    w_dense = w.detach().clone().requires_grad_(True)
    (2 * ((x @ w_dense) ** 2).sum()).backward()
    assert torch.allclose(w.grad, w_dense.grad, rtol=1e-5, atol=1e-5)

    x[0, :] = 0.5                                                    # in place: new version, new pattern
    pattern2, values2 = sparse_input_values(x)
    assert pattern2 is not pattern and torch.equal(values2, x.reshape(-1)[pattern2.idx])

    y = x * 2                                                        # same pattern via support: y's values
    pattern3, values3 = sparse_input_values(y, support=x)
    assert pattern3 is pattern2 and torch.equal(values3, 2 * values2) and pattern2.memo[0] is values2

    xg = x.clone().requires_grad_(True)                              # a wanted gradient: not memoised
    _, values4 = sparse_input_values(xg)
    assert values4.requires_grad and _common.sparse_pattern(xg).memo is None
    values4.sum().backward()
    assert xg.grad is not None and xg.grad.reshape(-1)[_common.sparse_pattern(xg).idx].eq(1).all()
