"""suite.data.synthetic: exact entropies against Monte Carlo, determinism, splits, words."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from suite.data import LANGUAGES, SyntheticLanguage
from suite.registry import UnknownNameError

SMALL = LANGUAGES.get("synthetic-small")
DEFAULT = LANGUAGES.get("synthetic")


@pytest.mark.parametrize("name", ["synthetic-small", "synthetic"])
def test_bayes_loss_matches_monte_carlo(name):
    lang = LANGUAGES.get(name)
    length, n = 64, 4000
    per_doc = lang.nll(lang.sample_many(range(n), length, "heldout")).mean(axis=1)
    se = per_doc.std(ddof=1) / np.sqrt(n)
    assert abs(per_doc.mean() - lang.bayes_loss(length)) < 3 * se, (per_doc.mean(), lang.bayes_loss(length), se)


def test_entropy_per_position_matches_monte_carlo_at_each_position():
    # 4000 docs give a per-position standard error of ~0.02 nats; 4 SE across 32 positions stays quiet.
    lang, length, n = SMALL, 32, 4000
    nll = lang.nll(lang.sample_many(range(n), length, "test"))
    se = nll.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(nll.mean(axis=0) - lang.entropy_per_position(length)) < 4 * se + 1e-9)


def test_position_zero_entropy_is_start_state_entropy():
    # e_0 read back through nll: p(x) = exp(-nll([x])) for every word; it must be a distribution.
    for lang in (SMALL, DEFAULT):
        p = np.exp(-lang.nll(np.arange(lang.vocab_size)[:, None])[:, 0])
        assert p.sum() == pytest.approx(1.0, abs=1e-9)
        assert np.count_nonzero(p) == lang.branching
        h0 = -(p[p > 0] * np.log(p[p > 0])).sum()
        assert lang.entropy_per_position(5)[0] == pytest.approx(h0, abs=1e-12)


def test_conditionals_normalise_after_any_prefix():
    lang = DEFAULT
    prefix = lang.sample(3, 40)
    cand = np.concatenate([np.broadcast_to(prefix, (lang.vocab_size, 40)),
                           np.arange(lang.vocab_size)[:, None]], axis=1)
    p = np.exp(-lang.nll(cand)[:, -1])
    assert p.sum() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("lang", [SMALL, DEFAULT, SyntheticLanguage(seed=1), SyntheticLanguage(seed=5, n_states=64),
                                  SyntheticLanguage(vocab_size=64, n_states=8, branching=8, n_topics=1, seed=3)])
def test_entropy_rate_is_the_long_document_limit(lang):
    tail = lang.entropy_per_position(3000)[-1000:].mean()
    assert lang.entropy_rate() == pytest.approx(tail, abs=0.01)


def test_presets_have_useful_entropies():
    for lang in (SMALL, DEFAULT):
        bayes = lang.bayes_loss(128)
        assert 1.5 < bayes < 3.0
        assert lang.unigram_entropy(128) > bayes + 1.5


def test_unigram_entropy_matches_samples():
    lang = DEFAULT
    docs = lang.sample_many(range(2000), 128)
    freq = np.bincount(docs.ravel(), minlength=lang.vocab_size) / docs.size
    emp = -(freq[freq > 0] * np.log(freq[freq > 0])).sum()
    assert emp == pytest.approx(lang.unigram_entropy(128), abs=0.02)


def test_context_beyond_previous_word_matters():
    # Plug-in bigram conditional entropy from 256k tokens (biased low by ~0.02 nats) must stay well above E:
    # the topic can only be known from longer context.
    lang = DEFAULT
    docs = lang.sample_many(range(2000), 128)
    pairs = docs[:, :-1] * lang.vocab_size + docs[:, 1:]
    joint = np.bincount(pairs.ravel(), minlength=lang.vocab_size ** 2).reshape(lang.vocab_size, -1) / pairs.size
    prev = joint.sum(axis=1)
    nz = joint > 0
    h_bigram = -(joint[nz] * np.log((joint / np.where(prev > 0, prev, 1)[:, None])[nz])).sum()
    assert h_bigram > lang.bayes_loss(128) + 0.2


def test_topics_share_each_phase_words():
    # The long-range design: a word is emitted by every topic of its phase, so one word never names the topic.
    from suite.data.synthetic import _tables

    for lang in (SMALL, DEFAULT):
        sym = _tables(lang).symbol.reshape(lang.n_topics, lang.n_states // lang.n_topics, lang.branching)
        assert (sym == sym[:1]).all()
        assert len(np.unique(sym)) == lang.vocab_size  # phases tile the whole vocabulary


def test_sampling_is_deterministic_and_order_free():
    lang = SMALL
    idx = [17, 3, 3, 250, 0]
    many = lang.sample_many(idx, 50)
    assert many.dtype == np.int64 and many.shape == (5, 50)
    for row, i in zip(many, idx):
        np.testing.assert_array_equal(row, lang.sample(i, 50))
    again = SyntheticLanguage(**{f: getattr(lang, f) for f in lang.__dataclass_fields__})
    np.testing.assert_array_equal(again.sample_many(idx[::-1], 50)[::-1], many)
    # A shorter document is a prefix of a longer one: positions draw from a per-document stream.
    np.testing.assert_array_equal(lang.sample(17, 20), many[0, :20])
    assert many.min() >= 0 and many.max() < lang.vocab_size


def test_seed_split_and_stream_change_the_documents():
    lang = SMALL
    base = lang.sample_many(range(200), 32)
    other_seed = SyntheticLanguage(vocab_size=256, n_states=64, n_topics=4, seed=1)
    for other in (lang.sample_many(range(200), 32, "heldout"), lang.sample_many(range(200), 32, stream=1),
                  lang.sample_many(range(200), 32, "validation"), other_seed.sample_many(range(200), 32)):
        assert (other != base).any(axis=1).all()


def test_splits_share_no_documents():
    lang = SMALL
    train = {d.tobytes() for d in lang.sample_many(range(2000), 24, "train")}
    heldout = {d.tobytes() for d in lang.sample_many(range(2000), 24, "heldout")}
    assert len(train) > 1900 and len(heldout) > 1900  # documents differ from each other too
    assert not train & heldout


def test_sampling_is_fast():
    lang = DEFAULT
    lang.sample(0, 1)  # build the tables
    t0 = time.perf_counter()
    lang.sample_many(range(10_000), 128)
    assert time.perf_counter() - t0 < 1.5  # ~0.06 s on 2 cores


def test_nll_marks_impossible_sequences():
    lang = SMALL
    doc = lang.sample(0, 10).copy()
    ok = lang.nll(doc)
    assert np.isfinite(ok).all() and (ok >= 0).all()
    p0 = np.exp(-lang.nll(np.arange(lang.vocab_size)[:, None])[:, 0])
    doc[0] = int(np.flatnonzero(p0 == 0)[0])
    assert np.isinf(lang.nll(doc)).all()


def test_words_are_distinct_pronounceable_and_render_joins_them():
    for lang in (SMALL, DEFAULT):
        words = lang.words()
        assert len(words) == len(set(words)) == lang.vocab_size
        assert all(re.fullmatch(r"(?:[bdfghklmnprstvz][aeiou])+", w) for w in words)
        assert lang.word(7) == words[7]
    doc = SMALL.sample(1, 12)
    text = SMALL.render(doc)
    assert text.split(" ") == [SMALL.word(int(s)) for s in doc]
    with pytest.raises(ValueError):
        SMALL.word(SMALL.vocab_size)


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="multiple of n_topics"):
        SyntheticLanguage(n_states=10, n_topics=4)
    with pytest.raises(ValueError, match="branching"):
        SyntheticLanguage(vocab_size=8, branching=16)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        SMALL.sample(0, 4, "dev")


def test_single_topic_is_a_plain_automaton():
    lang = SyntheticLanguage(vocab_size=64, n_states=8, branching=8, n_topics=1, seed=3)
    docs = lang.sample_many(range(3000), 16)
    per_doc = lang.nll(docs).mean(axis=1)
    assert abs(per_doc.mean() - lang.bayes_loss(16)) < 3 * per_doc.std(ddof=1) / np.sqrt(3000)


def test_language_registry():
    assert {"synthetic", "synthetic-small"} <= set(LANGUAGES.names())
    assert DEFAULT == SyntheticLanguage()
    with pytest.raises(UnknownNameError, match="did you mean 'synthetic'"):
        LANGUAGES.get("synthetik")
