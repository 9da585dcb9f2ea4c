"""suite.data.facts: the Zipf fact world's exact entropies against Monte Carlo, determinism, impossible symbols."""
from __future__ import annotations

import numpy as np
import pytest

from suite.data import LANGUAGES, FactWorld, make_source

SMALL = LANGUAGES.get("facts-small")
FACTS = LANGUAGES.get("facts")


@pytest.mark.parametrize("name", ["facts-small", "facts"])
def test_bayes_loss_matches_monte_carlo(name):
    w = LANGUAGES.get(name)
    length, n = 128, 4000
    per_doc = w.nll(w.sample_many(range(n), length, "heldout")).mean(axis=1)
    se = per_doc.std(ddof=1) / np.sqrt(n)
    assert abs(per_doc.mean() - w.bayes_loss(length)) < 3 * se, (per_doc.mean(), w.bayes_loss(length), se)


def test_entropy_per_position_matches_monte_carlo_with_a_cut_record():
    # 21 positions: 3 whole records of 6 and a record cut after its names and one value
    w, length, n = SMALL, 21, 8000
    nll = w.nll(w.sample_many(range(n), length, "test"))
    se = nll.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(nll.mean(axis=0) - w.entropy_per_position(length)) < 4 * se + 1e-9)


def test_value_entropy_and_name_entropy_are_exact():
    w = FactWorld(n_entities=50, name_alphabet=8, n_attributes=2, n_values=5, noise=0.2)
    q, r = 1 - 0.2 + 0.2 / 5, 0.2 / 5
    assert w.value_entropy() == pytest.approx(-(q * np.log(q) + 4 * r * np.log(r)))
    p = w.entity_probs()
    h = w.record_entropy()
    assert h[0] + h[1] == pytest.approx(-(p * np.log(p)).sum())   # chain rule: the names identify the entity
    # the first name word's distribution, read back through nll, sums to one and has entropy h[0]
    p1 = np.exp(-w.nll(np.arange(8)[:, None])[:, 0])
    assert p1.sum() == pytest.approx(1.0)
    assert -(p1[p1 > 0] * np.log(p1[p1 > 0])).sum() == pytest.approx(h[0])


def test_zipf_ranks_and_noise_show_in_samples():
    w = SMALL
    docs = w.sample_many(range(3000), 6 * 20, "train").reshape(-1, 6)       # records of 2 names + 4 values
    p = w.entity_probs()
    assert np.all(np.diff(p) < 0) and p[0] / p[9] == pytest.approx(((10 + 4) / (1 + 4)) ** 1.4)
    # the commonest name pair is rank 1's, at about p_1 of the records
    pairs, counts = np.unique(docs[:, 0] * 64 + docs[:, 1], return_counts=True)
    assert counts.max() / len(docs) == pytest.approx(p[0], rel=0.1)
    # a value is the entity's own with probability 1 - noise + noise / n_values
    top = docs[(docs[:, 0] * 64 + docs[:, 1]) == pairs[counts.argmax()]]
    own = np.bincount(top[:, 2] - 64, minlength=32).max() / len(top)
    assert own == pytest.approx(1 - 0.3 + 0.3 / 32, abs=0.03)


def test_samples_are_deterministic_and_splits_differ():
    a = FACTS.sample_many([3, 7, 11], 64, "train", stream=2)
    assert np.array_equal(a[1], FACTS.sample(7, 64, "train", stream=2))
    assert not np.array_equal(a, FACTS.sample_many([3, 7, 11], 64, "heldout", stream=2))
    assert a.min() >= 0 and a.max() < FACTS.vocab_size


def test_impossible_symbols_get_infinite_loss():
    w = SMALL
    doc = w.sample(0, 12)
    bad = doc.copy()
    bad[2] = 0            # a name word where the first value belongs
    assert np.isinf(w.nll(bad)[2]) and np.isfinite(w.nll(bad)[6:]).all()
    bad = doc.copy()
    bad[0] = 70           # a value word where a name word belongs: inf there and for the rest of the record
    assert np.isinf(w.nll(bad)[:6]).all() and np.isfinite(w.nll(bad)[6:]).all()
    quiet = FactWorld(n_entities=50, name_alphabet=8, n_attributes=2, n_values=5, noise=0.0)
    docs = quiet.sample_many(range(50), 8)      # noise 0: every value is the entity's own, loss 0 there
    assert np.all(quiet.nll(docs)[:, [2, 3, 6, 7]] == 0)
    # a name no entity has (50 entities, 64 possible names): inf for its second word and the rest of the record
    w = FactWorld(n_entities=50, name_alphabet=8, n_attributes=2, n_values=5)
    pairs = np.array([[a, b, 8, 13] for a in range(8) for b in range(8)])
    nll = w.nll(pairs)
    dead = np.isinf(nll[:, 1])
    assert dead.sum() == 64 - 50
    assert np.isinf(nll[dead, 2:]).all() and np.isfinite(nll[~dead]).all()


def test_invalid_worlds_are_refused():
    with pytest.raises(ValueError, match="names must be distinct"):
        FactWorld(n_entities=100, name_alphabet=8, name_length=2)
    with pytest.raises(ValueError, match="noise"):
        FactWorld(noise=1.0)


def test_a_facts_source_reports_the_exact_loss_of_its_heldout_tokens():
    src = make_source("synthetic", seq_len=64, language="facts-small", heldout_examples=64)
    assert src.bayes_loss == pytest.approx(SMALL.bayes_loss(64))
    assert abs(src.heldout_bayes_loss - src.bayes_loss) < 0.1
    assert len(src.tokenizer) >= SMALL.vocab_size
