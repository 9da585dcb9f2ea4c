"""GeRe's TM loss and the replay baselines: hand computations, zeros, gradients, per-example composition."""
import math

import pytest
import torch
import torch.nn.functional as F

from suite.continual.stage import StageBatch
from suite.methods import make_method
from suite.continual.methods import tm_loss, tm_violations


def test_tm_loss_equals_a_hand_computation():
    lo, hi = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0])
    # base states: dim 0 negative / neutral / positive; dim 1 neutral / positive / negative
    h0 = torch.tensor([[-2.0, 1.0], [0.0, 3.0], [1.5, -0.5]])
    h = torch.tensor([[-0.5, 2.5], [1.25, 2.0], [0.5, 0.25]])
    # token 0: dim0 NEG (h0 <= -1): relu(h - lo) = relu(-0.5 + 1) = 0.5; dim1 NEU: relu(2.5 - 2) + relu(0 - 2.5) = 0.5
    # token 1: dim0 NEU: relu(1.25 - 1) = 0.25;                      dim1 POS (h0 >= 2): relu(2 - 2) = 0
    # token 2: dim0 POS (h0 >= 1): relu(1 - 0.5) = 0.5;             dim1 NEG (h0 <= 0): relu(0.25 - 0) = 0.25
    expected = torch.tensor([[0.5, 0.5], [0.25, 0.0], [0.5, 0.25]])
    torch.testing.assert_close(tm_violations(h, h0, lo, hi), expected)
    # Σℓ / #(ℓ ≠ 0): 2.0 over 5 violating elements, not over all 6
    assert tm_loss(h, h0, lo, hi).item() == pytest.approx(2.0 / 5, rel=1e-6)
    # a masked token (padding) counts neither in the sum nor in the normalizer
    mask = torch.tensor([1.0, 1.0, 0.0])
    assert tm_loss(h, h0, lo, hi, mask).item() == pytest.approx(1.25 / 3, rel=1e-6)


def test_tm_loss_is_zero_at_the_base_snapshot():
    torch.manual_seed(0)
    h0 = torch.randn(4, 7, 16)
    mu, sd = h0.mean((0, 1)), h0.std((0, 1))
    lo, hi = mu - sd, mu + sd
    assert tm_loss(h0.clone(), h0, lo, hi).item() == 0.0
    assert tm_loss(h0.clone(), h0, lo, hi, dims=(1, 2)).abs().max().item() == 0.0  # per example too


def test_tm_gradient_pushes_every_violator_back_across_its_threshold():
    torch.manual_seed(1)
    h0 = torch.randn(6, 32)
    lo, hi = torch.full((32,), -0.5), torch.full((32,), 0.5)
    neg, pos = h0 <= lo, h0 >= hi
    h = (h0 + 1.5 * torch.randn_like(h0)).requires_grad_(True)
    v = tm_violations(h.detach(), h0, lo, hi)
    tm_loss(h, h0, lo, hi).backward()
    g = h.grad
    viol = v > 0
    assert viol.any() and (~viol).any()
    assert (g[~viol] == 0).all()                         # elements in their base state feel nothing
    up = (neg & viol) | (~neg & ~pos & viol & (h.detach() > hi))    # above where they should be: descend
    down = (pos & viol) | (~neg & ~pos & viol & (h.detach() < lo))  # below: ascend
    assert (g[up] > 0).all() and (g[down] < 0).all() and (up | down)[viol].all()
    # gradient descent ends with every element back in the base model's activation state; the loss is a mean
    # over violators, so each one moves lr / count per step: lr = 0.05 · count moves each by 0.05
    x = h.detach().clone().requires_grad_(True)
    for _ in range(400):
        loss = tm_loss(x, h0, lo, hi)
        if loss.item() == 0:
            break
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x -= 0.05 * int((tm_violations(x, h0, lo, hi) > 0).sum()) * g
    x = x.detach()
    assert tm_loss(x, h0, lo, hi).item() == 0
    assert (x[neg] <= lo.expand_as(x)[neg]).all() and (x[pos] >= hi.expand_as(x)[pos]).all()


def _batch(n=3, T=5, H=8, V=11, replay=(True, False, True), seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, T, H, generator=g, requires_grad=True)
    W = torch.randn(V, H, generator=g, requires_grad=True)
    labels = torch.randint(0, V, (n, T), generator=g)
    labels[1, :3] = -100                       # a task row: CE on its last tokens only
    labels[2, 4:] = -100
    valid = torch.ones(n, T, dtype=torch.bool)
    valid[2, 4:] = False                       # padding at the end of the second replay row
    h0 = torch.randn(n, T, H, generator=g) * valid[..., None]
    mu, sd = h0[valid].mean(0).double(), h0[valid].std(0).double()

    class Snap:
        def thresholds(self, sigma=1.0):
            return (mu - sigma * sd).float(), (mu + sigma * sd).float()

    W0 = torch.randn(V, H, generator=g)
    b = StageBatch(replay=torch.tensor(replay), valid=valid, h0=h0, snapshot=Snap(), _cache={"head": W0})
    return h, W, labels, b


def _ce_per_example(h, W, labels):
    out = []
    for i in range(h.shape[0]):
        keep = labels[i] != -100
        out.append(F.cross_entropy((h[i][keep] @ W.t()), labels[i][keep]))
    return torch.stack(out)


@pytest.mark.parametrize("weight", [100.0, 1.0, "dy"])
def test_gere_loss_is_per_example_ce_plus_weighted_tm_on_replay_rows(weight):
    h, W, labels, b = _batch()
    total, parts = make_method("gere", {"weight": weight}).loss(h, W, labels, batch=b)
    ce = _ce_per_example(h, W, labels)
    lo, hi = b.thresholds()
    tm = torch.stack([tm_loss(h[i], b.h0[i], lo, hi, b.valid[i]) for i in (0, 2)])
    w = ce[[0, 2]].detach() / (tm.detach() + 1e-8) if weight == "dy" else weight
    expected = ce.sum() + (w * tm).sum()
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-5)
    assert parts["replay_rows"] == 2 and parts["tm"] == pytest.approx(float(tm.detach().sum()), rel=1e-5)
    g1 = torch.autograd.grad(total, (h, W))
    g2 = torch.autograd.grad(expected, (h, W))
    for a, e in zip(g1, g2):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)


def test_baselines_compose_and_vanish_at_the_base():
    h, W, labels, b = _batch()
    ce = _ce_per_example(h, W, labels).sum()
    base_only = make_method("replay").loss(h, W, labels, batch=b)[0]
    torch.testing.assert_close(base_only, ce, rtol=1e-5, atol=1e-5)
    no_replay_ce = make_method("replay", {"label_fit": False}).loss(h, W, labels, batch=b)[0]
    torch.testing.assert_close(no_replay_ce, _ce_per_example(h, W, labels)[1], rtol=1e-5, atol=1e-5)
    # L2: mean squared difference over the valid tokens and dims of each replay row
    l2 = make_method("replay-l2", {"weight": 2.0}).loss(h, W, labels, batch=b)[0]
    d = [((h[i] - b.h0[i])[b.valid[i]] ** 2).mean() for i in (0, 2)]
    torch.testing.assert_close(l2, ce + 2.0 * (d[0] + d[1]), rtol=1e-5, atol=1e-5)
    # KL (T = 2): sum over the vocabulary, mean over the valid tokens; zero when h = h0 and W = W0
    T = 2.0
    kl = make_method("replay-kl").loss(h, W, labels, batch=b)[0]
    ref = 0.0
    for i in (0, 2):
        zt, zs = b.h0[i][b.valid[i]] @ b.head.t(), h[i][b.valid[i]] @ W.t()
        p = torch.softmax(zt / T, -1)
        ref = ref + (p * (torch.log_softmax(zt / T, -1) - torch.log_softmax(zs / T, -1))).sum(-1).mean()
    torch.testing.assert_close(kl, ce + ref, rtol=1e-4, atol=1e-5)
    h_same = b.h0.clone().requires_grad_(True)
    b._cache["head"] = W.detach()
    for name in ("replay-kl", "replay-l1", "replay-l2", "gere"):
        _, parts = make_method(name).loss(h_same, W, labels, batch=b)
        term = {"replay-kl": "kl", "replay-l1": "l1", "replay-l2": "l2", "gere": "tm"}[name]
        assert abs(parts[term]) < 1e-5, name


def test_continual_methods_refuse_to_run_outside_a_stage_and_bad_params():
    h, W, labels, _ = _batch()
    with pytest.raises(ValueError, match="continual"):
        make_method("gere").loss(h, W, labels)
    with pytest.raises(ValueError, match="'dy'"):
        make_method("gere", {"weight": "dynamic"})
    with pytest.raises(ValueError, match="label_fit"):
        make_method("replay-l2", {"weight": "dy", "label_fit": False})
    assert math.isclose(make_method("gere").params.weight, 100.0)


def test_zero_violations_leave_only_the_ce_even_with_the_dynamic_weight():
    """No violation: TM = 0 / (0 + 1e-8) = 0, and 'dy' (w = CE / 1e-8) adds neither loss nor gradient."""
    _, W, labels, b = _batch()
    h = b.h0.clone().requires_grad_(True)          # every replay row exactly at the base states
    total, parts = make_method("gere", {"weight": "dy"}).loss(h, W, labels, batch=b)
    ce = _ce_per_example(h, W, labels).sum()
    assert parts["tm"] == 0.0 and torch.isfinite(total)
    torch.testing.assert_close(total, ce, rtol=1e-5, atol=1e-5)
    for a, e in zip(torch.autograd.grad(total, (h, W)), torch.autograd.grad(ce, (h, W))):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)
