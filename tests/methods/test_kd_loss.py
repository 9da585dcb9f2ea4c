"""The KD loss family: formulas against hand computations, chunked against naive (values and gradients)."""

import pytest
import torch

from suite.config import ConfigError, config_from_dict
from suite.methods import DIVERGENCES, head_loss, make_method, naive_head_loss, teacher_log_probs
from suite.methods.chunked import auto_chunk_size

torch.manual_seed(0)


def _probs(n=5, v=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    zs, zt = torch.randn(n, v, generator=g, dtype=torch.float64), torch.randn(n, v, generator=g, dtype=torch.float64)
    return zs, zt


def _kl(p, q):
    return (p * (p.log() - q.log())).sum(-1)


@pytest.mark.parametrize("name,ref", [
    ("forward_kl", lambda p, q: _kl(p, q)),
    ("reverse_kl", lambda p, q: _kl(q, p)),
    ("soft_ce", lambda p, q: -(p * q.log()).sum(-1)),
    ("skew_kl", lambda p, q: _kl(p, 0.1 * p + 0.9 * q)),
    ("skew_reverse_kl", lambda p, q: _kl(q, 0.9 * p + 0.1 * q)),
    ("jsd", lambda p, q: 0.3 * _kl(p, 0.3 * p + 0.7 * q) + 0.7 * _kl(q, 0.3 * p + 0.7 * q)),
])
def test_divergence_matches_formula(name, ref):
    zs, zt = _probs()
    p, q = zt.softmax(-1), zs.softmax(-1)
    got = DIVERGENCES.get(name)(zs.log_softmax(-1), zt.log_softmax(-1), skew_alpha=0.1, jsd_beta=0.3)
    torch.testing.assert_close(got, ref(p, q))
    assert (got >= -1e-12).all()


def test_jsd_endpoints_follow_trl():
    zs, zt = _probs()
    ls, lt = zs.log_softmax(-1), zt.log_softmax(-1)
    jsd = DIVERGENCES.get("jsd")
    torch.testing.assert_close(jsd(ls, lt, jsd_beta=0.0), DIVERGENCES.get("forward_kl")(ls, lt))
    torch.testing.assert_close(jsd(ls, lt, jsd_beta=1.0), DIVERGENCES.get("reverse_kl")(ls, lt))


def test_divergences_vanish_when_distributions_match():
    zs, _ = _probs()
    ls = zs.log_softmax(-1)
    for name in ["forward_kl", "reverse_kl", "skew_kl", "skew_reverse_kl", "jsd"]:
        assert DIVERGENCES.get(name)(ls, ls.clone()).abs().max() < 1e-12, name


def test_topk_teacher_renormalizes_and_zeroes_the_rest():
    _, zt = _probs()
    lt = teacher_log_probs(zt, temperature=2.0, top_k=3)
    p = lt.exp()
    torch.testing.assert_close(p.sum(-1), torch.ones(5, dtype=torch.float64))
    assert ((p > 0).sum(-1) == 3).all()
    top = zt.topk(3, dim=-1).indices
    assert torch.equal(torch.sort(top, -1).values, torch.sort((p > 0).nonzero()[:, 1].view(5, 3), -1).values)


def test_hinton_loss_by_hand():
    """(1−λ)·CE(hard) + λ·T²·CE(soft) with soft_ce, checked term by term."""
    zs, zt = _probs(n=4, v=6)
    labels = torch.tensor([0, 3, 5, 1])
    T, lam = 4.0, 0.7
    m = make_method("kd", {"divergence": "soft_ce", "temperature": T, "kd_weight": lam})
    got, parts = m.objective(zs, zt, labels)
    hard = -zs.log_softmax(-1)[torch.arange(4), labels].sum()
    soft = -((zt / T).softmax(-1) * (zs / T).log_softmax(-1)).sum()
    torch.testing.assert_close(got, (1 - lam) * hard + lam * T * T * soft)
    torch.testing.assert_close(parts["ce"], hard)


def _setup(n=37, h=16, v=50, ht=24, seed=1, ignore=True):
    g = torch.Generator().manual_seed(seed)
    h_s = torch.randn(n, h, generator=g, requires_grad=True)
    W_s = (0.3 * torch.randn(v, h, generator=g)).requires_grad_(True)
    h_t, W_t = torch.randn(n, ht, generator=g), 0.3 * torch.randn(v, ht, generator=g)
    labels = torch.randint(0, v, (n,), generator=g)
    if ignore:
        labels[::5] = -100
    return h_s, W_s, h_t, W_t, labels


@pytest.mark.parametrize("params", [
    {"divergence": "forward_kl"},
    {"divergence": "reverse_kl", "temperature": 2.0, "kd_weight": 0.5},
    {"divergence": "skew_kl", "skew_alpha": 0.1},
    {"divergence": "skew_reverse_kl", "skew_alpha": 0.2, "kd_weight": 0.9},
    {"divergence": "jsd", "jsd_beta": 0.5, "temperature": 3.0},
    {"divergence": "soft_ce", "temperature": 4.0, "kd_weight": 0.7},
    {"divergence": "forward_kl", "top_k": 5},
    # the closed-form path (forward_kl, soft_ce and what reduces to them) under every switch
    {"divergence": "forward_kl", "temperature": 2.0},
    {"divergence": "forward_kl", "temperature": 3.0, "kd_weight": 0.4, "t2_scale": False},
    {"divergence": "forward_kl", "kd_weight": 0.0},
    {"divergence": "forward_kl", "top_k": 5, "temperature": 2.0, "kd_weight": 0.6},
    {"divergence": "soft_ce", "top_k": 3},
    {"divergence": "soft_ce"},
    {"divergence": "jsd", "jsd_beta": 0.0, "temperature": 2.0},
    {"divergence": "skew_kl", "skew_alpha": 0.0, "kd_weight": 0.5},
    {"divergence": "jsd", "jsd_beta": 1.0, "temperature": 2.0},
    {"divergence": "reverse_kl", "temperature": 0.5},
])
def test_chunked_kd_equals_naive_values_and_gradients(params):
    m = make_method("kd", params)
    h_s, W_s, h_t, W_t, labels = _setup()
    naive, naive_parts = naive_head_loss(h_s, W_s, labels, m.objective, h_t=h_t, W_t=W_t)
    g_naive = torch.autograd.grad(naive, [h_s, W_s])
    chunked, parts = head_loss(h_s, W_s, labels, m.objective, h_t=h_t, W_t=W_t, chunk_size=8)
    g_chunk = torch.autograd.grad(chunked, [h_s, W_s])
    torch.testing.assert_close(chunked, naive, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_chunk, g_naive):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert parts["ce"] == pytest.approx(float(naive_parts["ce"]), rel=1e-5)
    # ignored rows get no gradient
    assert g_chunk[0][labels == -100].abs().max() == 0


@pytest.mark.parametrize("params,closed", [
    ({"divergence": "forward_kl"}, True), ({"divergence": "soft_ce", "top_k": 4}, True),
    ({"divergence": "jsd", "jsd_beta": 0.0}, True), ({"divergence": "reverse_kl", "kd_weight": 0.0}, True),
    ({"divergence": "reverse_kl"}, False), ({"divergence": "jsd"}, False), ({"divergence": "skew_kl"}, False),
])
def test_closed_form_is_offered_where_it_exists(params, closed):
    assert (make_method("kd", params).closed_form() is not None) == closed


@pytest.mark.parametrize("params", [{}, {"temperature": 2.0, "kd_weight": 0.3}, {"divergence": "soft_ce", "top_k": 6},
                                    {"temperature": 4.0, "t2_scale": False}, {"kd_weight": 0.0}])
def test_closed_form_equals_autograd_on_full_logits(params):
    m = make_method("kd", params)
    zs, zt = _probs(n=9, v=40, seed=4)
    zs, zt = 3 * zs.float(), 3 * zt.float()
    labels = torch.arange(9) * 4
    leaf = zs.clone().requires_grad_(True)
    ref, ref_parts = m.objective(leaf, zt, labels)
    loss, parts, dz = m.objective_and_grad(zs.clone(), zt.clone(), labels)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dz, torch.autograd.grad(ref, leaf)[0], rtol=1e-4, atol=1e-6)
    for k in ref_parts:
        torch.testing.assert_close(parts[k], ref_parts[k].detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("params", [{"divergence": "forward_kl", "temperature": 2.0, "kd_weight": 0.5},
                                    {"divergence": "reverse_kl"}, {"divergence": "soft_ce", "top_k": 5}])
def test_chunked_kd_equals_naive_in_bf16(params):
    m = make_method("kd", params)
    h_s, W_s, h_t, W_t, labels = _setup()
    h_s, W_s = h_s.detach().bfloat16().requires_grad_(True), W_s.detach().bfloat16().requires_grad_(True)
    h_t, W_t = h_t.bfloat16(), W_t.bfloat16()
    naive, _ = naive_head_loss(h_s, W_s, labels, m.objective, h_t=h_t, W_t=W_t)
    g_naive = torch.autograd.grad(naive, [h_s, W_s])
    chunked, _ = head_loss(h_s, W_s, labels, m.objective, h_t=h_t, W_t=W_t, chunk_size=8)
    g_chunk = torch.autograd.grad(chunked, [h_s, W_s])
    assert chunked.dtype == torch.float32
    torch.testing.assert_close(chunked, naive, rtol=1e-5, atol=1e-4)
    for a, b in zip(g_chunk, g_naive):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("params", [{}, {"temperature": 2.0, "kd_weight": 0.3}, {"divergence": "soft_ce"}])
def test_compile_kernel_matches_and_a_failed_compile_falls_back(params, monkeypatch):
    """SUITE_KD_COMPILE=1 runs the dense closed form through torch.compile; here compile fails: eager, same loss."""
    import suite.methods.kd as kd

    m = make_method("kd", params)
    h_s, W_s, h_t, W_t, labels = _setup()
    ref, _ = head_loss(h_s, W_s, labels, m.objective, h_t=h_t, W_t=W_t, chunk_size=8)
    g_ref = torch.autograd.grad(ref, [h_s, W_s])
    p = m.params
    # the function compile would get equals the eager closed form
    zs, zt = 3 * torch.randn(7, 50), 3 * torch.randn(7, 50)
    y = torch.arange(7)
    scale = p.temperature ** 2 if p.t2_scale else 1.0
    ce, soft, dz = kd._dense_kernel(zs, zt, y, p.temperature, p.kd_weight * scale / p.temperature,
                                    1 - p.kd_weight, m.soft_divergence() == "forward_kl")
    loss, parts, dz_eager = m.objective_and_grad(zs.clone(), zt.clone(), y)
    torch.testing.assert_close(dz, dz_eager, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(soft, parts["kd"], rtol=1e-5, atol=1e-5)

    def broken(fn, **_):
        def run(*a, **k):
            raise RuntimeError("no compiler here")
        return run
    monkeypatch.setenv("SUITE_KD_COMPILE", "1")
    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(kd, "_COMPILE", {"fn": None, "failed": None})
    with pytest.warns(UserWarning, match="running eager"):
        got, _ = head_loss(h_s, W_s, labels, m.objective, h_t=h_t, W_t=W_t, chunk_size=8)
    assert kd._COMPILE["failed"]
    torch.testing.assert_close(got, ref)
    for a, b in zip(torch.autograd.grad(got, [h_s, W_s]), g_ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("params", [{"divergence": "forward_kl"}, {"divergence": "jsd"}])
def test_chunked_kd_under_autocast_matches_naive(params):
    """Under autocast the head matmuls run in its dtype, as `h @ W.t()` would; gradients come back in fp32."""
    m = make_method("kd", params)
    h_s, W_s, h_t, W_t, labels = _setup()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        naive, _ = naive_head_loss(h_s, W_s, labels, m.objective, h_t=h_t, W_t=W_t)
        chunked, _ = head_loss(h_s, W_s, labels, m.objective, h_t=h_t, W_t=W_t, chunk_size=8)
    g_naive = torch.autograd.grad(naive, [h_s, W_s])
    g_chunk = torch.autograd.grad(chunked, [h_s, W_s])
    torch.testing.assert_close(chunked, naive, rtol=1e-4, atol=1e-4)
    for a, b in zip(g_chunk, g_naive):
        assert a.dtype == torch.float32  # dL/dW sums bf16 products chunk by chunk: bf16-sized differences
        torch.testing.assert_close(a, b, rtol=2e-2, atol=1e-2)


def test_chunked_backward_runs_once():
    m = make_method("kd")
    h_s, W_s, h_t, W_t, labels = _setup()
    loss, _ = head_loss(h_s, W_s, labels, m.objective, h_t=h_t, W_t=W_t, chunk_size=8)
    torch.autograd.grad(loss, [h_s], retain_graph=True)
    with pytest.raises(RuntimeError, match="once"):
        torch.autograd.grad(loss, [h_s])


def test_chunked_supervised_equals_cross_entropy():
    m = make_method("supervised")
    h_s, W_s, _, _, labels = _setup()
    loss, _ = head_loss(h_s, W_s, labels, m.objective, chunk_size=4)
    ref = torch.nn.functional.cross_entropy(h_s @ W_s.t(), labels, ignore_index=-100, reduction="sum")
    torch.testing.assert_close(loss, ref)
    g1 = torch.autograd.grad(loss, [h_s, W_s])
    g2 = torch.autograd.grad(ref, [h_s, W_s])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_chunked_loss_scales_with_upstream_gradient():
    m = make_method("kd")
    h_s, W_s, h_t, W_t, labels = _setup()
    loss, _ = head_loss(h_s, W_s, labels, m.objective, h_t=h_t, W_t=W_t, chunk_size=8)
    g1 = torch.autograd.grad(3.0 * loss, [h_s])[0]
    loss2, _ = naive_head_loss(h_s, W_s, labels, m.objective, h_t=h_t, W_t=W_t)
    torch.testing.assert_close(g1, torch.autograd.grad(3.0 * loss2, [h_s])[0], rtol=1e-5, atol=1e-6)


def test_auto_chunk_size_bounds_logit_memory():
    c = auto_chunk_size(4096, 1024, 128_000)
    assert c * 128_000 <= 4 * 4096 * 1024 and c >= 16
    assert auto_chunk_size(2048, 256, 516) >= 1024
    # a small student of a large-vocabulary teacher: Liger's rule alone gives 32 rows (256 launch-bound chunks
    # per 8k-token step on an H200); the floor of 8M logits per chunk gives 256 rows
    assert auto_chunk_size(8192, 160, 49152) == 256
    # on CPU the floor is 512 rows (the dL/dW matmul's inner dimension), at most 64M logits
    assert auto_chunk_size(4096, 1024, 128_000, device="cpu") == 512
    assert auto_chunk_size(4096, 1024, 128_000, device="cuda") == 128
    assert auto_chunk_size(4096, 1024, 1_000_000, device="cpu") == 128


@pytest.mark.parametrize("bad,msg", [
    ({"divergence": "fkl"}, "valid: forward_kl"),
    ({"temperature": 0}, "temperature"),
    ({"kd_weight": 1.5}, "kd_weight"),
    ({"divergence": "reverse_kl", "top_k": 8}, "top_k"),
    ({"temprature": 2.0}, "did you mean 'temperature'"),
])
def test_bad_kd_params_are_clear_errors(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        config_from_dict({"method": {"name": "kd", **bad}, "teacher": "t"}, "grid.yaml")
