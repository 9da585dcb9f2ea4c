"""KD from a top-k teacher with a tail bucket (what a teacher-output cache stores) against full teacher logits."""

import pytest
import torch

from suite.methods import DIVERGENCES, head_loss, make_method, naive_head_loss
from suite.methods.divergences import TopKTeacher, bucket_log_probs, log1mexp, topk_teacher

ALL = [
    {"divergence": "forward_kl"},
    {"divergence": "reverse_kl", "temperature": 2.0, "kd_weight": 0.5},
    {"divergence": "skew_kl", "skew_alpha": 0.1},
    {"divergence": "skew_reverse_kl", "skew_alpha": 0.2, "kd_weight": 0.9},
    {"divergence": "jsd", "jsd_beta": 0.5, "temperature": 3.0},
    {"divergence": "soft_ce", "temperature": 4.0, "kd_weight": 0.7},
    {"divergence": "forward_kl", "temperature": 2.0, "kd_weight": 0.3, "t2_scale": False},
]


def _setup(n=23, h=12, v=30, ht=10, seed=3, ignore=True, sharp=1.0):
    g = torch.Generator().manual_seed(seed)
    h_s = torch.randn(n, h, generator=g, requires_grad=True)
    W_s = (0.3 * torch.randn(v, h, generator=g)).requires_grad_(True)
    h_t, W_t = torch.randn(n, ht, generator=g), sharp * torch.randn(v, ht, generator=g)
    labels = torch.randint(0, v, (n,), generator=g)
    if ignore:
        labels[::4] = -100
    return h_s, W_s, h_t, W_t, labels


def _both(m, h_s, W_s, labels, **teacher):
    """(naive loss, naive grads), (chunked loss, chunked grads)."""
    out = []
    for fn, kw in ((naive_head_loss, {}), (head_loss, {"chunk_size": 4})):
        loss, _ = fn(h_s, W_s, labels, m.objective, **teacher, **kw)
        out.append((loss, torch.autograd.grad(loss, [h_s, W_s])))
    return out


@pytest.mark.parametrize("params", ALL)
def test_topk_equals_full_at_k_equals_vocab(params):
    m = make_method("kd", params)
    h_s, W_s, h_t, W_t, labels = _setup()
    T = m.params.temperature
    cache = topk_teacher(h_t @ W_t.t(), T, k=W_t.shape[0])  # aligned with all rows, ignored ones included
    (full, g_full), _ = _both(m, h_s, W_s, labels, h_t=h_t, W_t=W_t)
    for loss, grads in _both(m, h_s, W_s, labels, h_t=cache):
        torch.testing.assert_close(loss, full, rtol=1e-5, atol=1e-5)
        for a, b in zip(grads, g_full):
            assert torch.isfinite(a).all()
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", list(DIVERGENCES))
def test_bucketed_divergence_at_k_equals_vocab_is_the_full_one(name):
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(6, 9, generator=g), torch.randn(6, 9, generator=g)
    zs.requires_grad_(True)
    ls, lt = zs.log_softmax(-1), zt.log_softmax(-1)
    full = DIVERGENCES.get(name)(ls, lt, skew_alpha=0.1, jsd_beta=0.3)
    lsb, ltb = bucket_log_probs(ls, topk_teacher(zt, 1.0, 9))
    assert lsb.shape == (6, 9)  # no tail bucket
    got = DIVERGENCES.get(name)(lsb, ltb, skew_alpha=0.1, jsd_beta=0.3)
    torch.testing.assert_close(got, full)
    g_got = torch.autograd.grad(got.sum(), zs, retain_graph=True)[0]
    torch.testing.assert_close(g_got, torch.autograd.grad(full.sum(), zs)[0])


def test_buckets_are_distributions():
    g = torch.Generator().manual_seed(1)
    zs, zt = torch.randn(5, 50, generator=g), 3 * torch.randn(5, 50, generator=g)
    lsb, ltb = bucket_log_probs(zs.log_softmax(-1), topk_teacher(zt, 2.0, 7))
    assert lsb.shape == ltb.shape == (5, 8)
    torch.testing.assert_close(lsb.exp().sum(-1), torch.ones(5))
    torch.testing.assert_close(ltb.exp().sum(-1), torch.ones(5))
    p = (zt / 2.0).softmax(-1)
    torch.testing.assert_close(ltb[:, -1].exp(), 1 - p.topk(7, -1).values.sum(-1))


@pytest.mark.parametrize("k", [1, 3, 10, 25, 40, 49])
def test_bucketed_forward_kl_is_at_most_the_full_one_and_close_at_large_k(k):
    g = torch.Generator().manual_seed(2)
    zs, zt = 2 * torch.randn(64, 50, generator=g), 4 * torch.randn(64, 50, generator=g)
    ls, lt = zs.log_softmax(-1), zt.log_softmax(-1)
    fkl = DIVERGENCES.get("forward_kl")
    full = fkl(ls, lt)
    bucketed = fkl(*bucket_log_probs(ls, topk_teacher(zt, 1.0, k)))
    assert (bucketed <= full * (1 + 1e-5) + 1e-6).all()  # data processing inequality, row by row (fp32)
    if k >= 40:
        assert (full - bucketed).sum() / full.sum() < 0.02


@pytest.mark.parametrize("params", [{"divergence": "forward_kl"}, {"divergence": "soft_ce", "temperature": 2.0},
                                    {"divergence": "reverse_kl", "kd_weight": 0.6}, {"divergence": "jsd"}])
def test_topk_teacher_chunked_equals_naive_and_drops_ignored_rows(params):
    m = make_method("kd", params)
    h_s, W_s, h_t, W_t, labels = _setup()
    cache = topk_teacher(h_t @ W_t.t(), m.params.temperature, k=6)
    (naive, g_naive), (chunked, g_chunk) = _both(m, h_s, W_s, labels, h_t=cache)
    torch.testing.assert_close(chunked, naive, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_chunk, g_naive):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert g_chunk[0][labels == -100].abs().max() == 0
    # the same as the objective on the kept rows by hand
    keep = labels != -100
    ref, _ = m.objective((h_s[keep] @ W_s.t()).float(), cache[keep], labels[keep])
    torch.testing.assert_close(chunked, ref, rtol=1e-5, atol=1e-5)


def test_topk_teacher_rows_may_have_the_labels_shape():
    m = make_method("kd")
    h_s, W_s, h_t, W_t, labels = _setup(n=24)
    cache = topk_teacher(h_t @ W_t.t(), 1.0, k=5)
    flat, _ = head_loss(h_s, W_s, labels, m.objective, h_t=cache, chunk_size=4)
    shaped = TopKTeacher(cache.logp.view(4, 6, 5), cache.idx.view(4, 6, 5))
    got, _ = head_loss(h_s.view(4, 6, -1), W_s, labels.view(4, 6), m.objective, h_t=shaped, chunk_size=4)
    torch.testing.assert_close(got, flat)
    with pytest.raises(ValueError, match="aligned"):
        head_loss(h_s, W_s, labels, m.objective, h_t=cache[:10])


@pytest.mark.parametrize("params", ALL + [{"divergence": "forward_kl", "top_k": 3}])
@pytest.mark.parametrize("k", [4, 30])
def test_no_nan_with_a_one_hot_teacher(params, k):
    m = make_method("kd", params)
    h_s, W_s, h_t, W_t, labels = _setup(sharp=1.0)
    zt = h_t @ W_t.t()
    zt[torch.arange(zt.shape[0]), labels.clamp(min=0)] += 400.0  # p ≈ one-hot: 1 − Σ p_k rounds to 0
    cache = topk_teacher(zt, m.params.temperature, k=k)
    for loss, grads in _both(m, h_s, W_s, labels, h_t=cache):
        assert torch.isfinite(loss)
        for grad in grads:
            assert torch.isfinite(grad).all()


@pytest.mark.parametrize("params", [
    {"divergence": "forward_kl", "top_k": 3},
    {"divergence": "skew_kl", "top_k": 4, "temperature": 2.0},
    {"divergence": "jsd", "jsd_beta": 0.3, "top_k": 2, "kd_weight": 0.5},
])
def test_top_k_on_a_cached_teacher_equals_top_k_on_full_logits(params):
    """KDParams.top_k (truncate, renormalize) on a cache of k ≥ top_k: the same loss as on full logits."""
    m = make_method("kd", params)
    h_s, W_s, h_t, W_t, labels = _setup()
    cache = topk_teacher(h_t @ W_t.t(), m.params.temperature, k=8)
    (full, g_full), _ = _both(m, h_s, W_s, labels, h_t=h_t, W_t=W_t)
    for loss, grads in _both(m, h_s, W_s, labels, h_t=cache):
        torch.testing.assert_close(loss, full, rtol=1e-5, atol=1e-5)
        for a, b in zip(grads, g_full):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_top_k_above_the_cached_k_is_an_error():
    m = make_method("kd", {"top_k": 9})
    h_s, W_s, h_t, W_t, labels = _setup()
    with pytest.raises(ValueError, match="top 8"):
        head_loss(h_s, W_s, labels, m.objective, h_t=topk_teacher(h_t @ W_t.t(), 1.0, k=8))


@pytest.mark.parametrize("params", [{}, {"temperature": 2.0, "kd_weight": 0.5}, {"divergence": "soft_ce"},
                                    {"top_k": 4, "temperature": 3.0}, {"kd_weight": 0.0}])
@pytest.mark.parametrize("k", [1, 7, 30])
def test_closed_form_equals_autograd_on_a_topk_teacher(params, k):
    m = make_method("kd", params)
    g = torch.Generator().manual_seed(k)
    zs, zt = 3 * torch.randn(11, 30, generator=g), 3 * torch.randn(11, 30, generator=g)
    y = torch.randint(0, 30, (11,), generator=g)
    if m.params.top_k and m.params.top_k > k:
        return
    cache = topk_teacher(zt, m.params.temperature, k)
    leaf = zs.clone().requires_grad_(True)
    ref, ref_parts = m.objective(leaf, cache, y)
    loss, parts, dz = m.objective_and_grad(zs.clone(), cache, y)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dz, torch.autograd.grad(ref, leaf)[0], rtol=1e-4, atol=1e-6)
    assert parts.keys() == ref_parts.keys()


def test_log1mexp_is_stable_at_both_ends():
    x = torch.tensor([0.0, -1e-10, -1e-3, -0.5, -5.0, -50.0], dtype=torch.float64)
    ref = torch.log(1 - torch.exp(x))
    got = log1mexp(x)
    assert got[0] == float("-inf")
    torch.testing.assert_close(got[2:], ref[2:])
    torch.testing.assert_close(got[1], torch.tensor(-1e-10, dtype=torch.float64).neg().log())
