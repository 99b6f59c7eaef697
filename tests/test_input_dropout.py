"""InputDropout (methods/_common.py): nn.Dropout's distribution with draws on the non-zero entries only."""
import pytest
import torch

from gkd_bench.methods import _common
from gkd_bench.methods._common import InputDropout


def _sparse(n=400, f=500, density=0.02, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, f, generator=g) + 0.5
    return x * (torch.rand(n, f, generator=g) < density)


def test_identity_in_eval_mode_and_at_zero_rate():
    x = _sparse()
    d = InputDropout(0.5).eval()
    assert d(x) is x
    assert InputDropout(0.0).train()(x) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        InputDropout(1.0)


def test_sparse_input_zeros_stay_zero_kept_entries_are_rescaled_and_the_keep_rate_is_1_minus_p():
    p = 0.8
    x = _sparse(1000, 1000, 0.02)
    torch.manual_seed(0)
    out = InputDropout(p).train()(x)
    nz = x != 0
    assert not out[~nz].any()                                     # zeros stay zero
    kept = out[nz] != 0
    assert torch.allclose(out[nz][kept], x[nz][kept] / (1 - p))   # survivors scaled by 1/(1-p)
    n = int(nz.sum())
    rate = kept.float().mean().item()
    sigma = ((1 - p) * p / n) ** 0.5
    assert abs(rate - (1 - p)) < 6 * sigma, (rate, n)
    # E[out] = x: each entry is 2x * Bernoulli(0.5), sd x <= 1.5, so the mean of 400 draws is within
    # 6 sd = 6 * 1.5 / 20 = 0.45 of x
    torch.manual_seed(1)
    d = InputDropout(0.5).train()
    mean = sum(d(x[:50]) for _ in range(400)) / 400
    assert torch.allclose(mean, x[:50], atol=0.45)


def test_dense_input_falls_back_to_torch_dropout_bit_for_bit():
    x = torch.rand(60, 40) + 0.1                                  # no zeros: 100% dense
    torch.manual_seed(3)
    ours = InputDropout(0.6).train()(x)
    torch.manual_seed(3)
    ref = torch.nn.functional.dropout(x, 0.6, True)
    assert torch.equal(ours, ref)


def test_gradient_is_the_mask_on_nonzeros_and_zero_elsewhere():
    x = _sparse(50, 60, 0.1).requires_grad_(True)
    torch.manual_seed(0)
    out = InputDropout(0.5).train()(x)
    out.sum().backward()
    expected = (out.detach() != 0).float() / 0.5
    assert torch.equal(x.grad, expected)


def test_nonzero_index_is_memoised_per_tensor_and_recomputed_after_an_in_place_change():
    x = _sparse(30, 40, 0.05)
    a = _common._flat_nonzero(x)
    assert _common._flat_nonzero(x) is a                          # memoised
    zero = int((x.reshape(-1) == 0).nonzero()[0])
    x.view(-1)[zero] = 7.0                                        # a former zero becomes non-zero
    b = _common._flat_nonzero(x)
    assert zero in set(b.tolist()) and len(b) == len(a) + 1
    torch.manual_seed(0)
    outs = [InputDropout(0.5).train()(x).view(-1)[zero].item() for _ in range(40)]
    assert {0.0, 14.0} == set(outs)                               # the new entry is dropped or kept x2
    dense = torch.rand(10, 10) + 0.1
    assert _common._flat_nonzero(dense) is None                   # over the density limit: dense path


def test_support_gives_the_pattern_of_a_derived_tensor():
    x = _sparse(100, 80, 0.05)
    h = torch.nn.functional.normalize(x, p=1.0, dim=1)          # same non-zero pattern, new tensor
    torch.manual_seed(0)
    out = InputDropout(0.5).train()(h, support=x)
    assert not out[x == 0].any()
    kept = out != 0
    assert torch.allclose(out[kept], h[kept] * 2)
