"""suite.data.sources: example layout, determinism, splits, epochs, and make_source."""
from __future__ import annotations

import json

import numpy as np
import pytest

from suite.data import (BOS_ID, EOS_ID, LANGUAGES, N_SPECIAL, SOURCES, CorpusSource, SyntheticSource, TokenSource,
                        load_tokenizer, make_source, same_tokenizer, tokenize_documents, word_level_tokenizer)
from suite.registry import UnknownNameError

LANG = LANGUAGES.get("synthetic-small")
WORDS = word_level_tokenizer(LANG.words())


# ---- SyntheticSource -----------------------------------------------------------------------------------

def test_synthetic_example_layout():
    src = SyntheticSource(LANG, seq_len=32, heldout_examples=8)
    assert isinstance(src, TokenSource)
    ex = src.example(5)
    assert ex.shape == (33,) and ex.dtype == np.int64
    assert ex[0] == BOS_ID == src.tokenizer.bos_token_id
    np.testing.assert_array_equal(ex[1:], LANG.sample(5, 32, "train") + N_SPECIAL)
    assert src.tokenizer.decode(ex[1:].tolist()) == LANG.render(ex[1:] - N_SPECIAL)
    assert src.bayes_loss == LANG.bayes_loss(32)
    assert src.vocab_size == len(src.tokenizer) == LANG.vocab_size + N_SPECIAL


def test_synthetic_batches_are_order_free_and_split_aware():
    src = SyntheticSource(LANG, seq_len=16, heldout_examples=8)
    idx = [10**9, 4, 0, 4]
    b = src.batch(idx)
    assert b.shape == (4, 17) and b.dtype == np.int64
    for row, i in zip(b, idx):
        np.testing.assert_array_equal(row, src.example(i))
    held = src.batch(range(8), "heldout")
    np.testing.assert_array_equal(held[:, 1:], LANG.sample_many(range(8), 16, "heldout") + N_SPECIAL)
    assert (held != src.batch(range(8))).any(axis=1).all()
    assert src.num_examples("train") is None and src.num_examples("heldout") == 8
    with pytest.raises(IndexError, match="8 examples"):
        src.example(8, "heldout")
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        src.example(0, "validation")


def test_synthetic_seed_changes_train_but_not_heldout():
    a = SyntheticSource(LANG, seq_len=16, heldout_examples=4, seed=0)
    b = SyntheticSource(LANG, seq_len=16, heldout_examples=4, seed=1)
    assert (a.batch(range(4)) != b.batch(range(4))).any(axis=1).all()
    np.testing.assert_array_equal(a.batch(range(4), "heldout"), b.batch(range(4), "heldout"))


def test_heldout_bayes_loss_is_the_exact_loss_on_those_examples():
    src = SyntheticSource(LANG, seq_len=64, heldout_examples=256)
    held = src.batch(range(256), "heldout")
    per_doc = LANG.nll(held[:, 1:] - N_SPECIAL).mean(axis=1)
    assert src.heldout_bayes_loss == pytest.approx(per_doc.mean())
    assert abs(src.heldout_bayes_loss - src.bayes_loss) < 4 * per_doc.std(ddof=1) / 16


# ---- CorpusSource --------------------------------------------------------------------------------------

def _docs(n=120, length=(5, 40)):
    rng = np.random.default_rng(0)
    return [LANG.render(LANG.sample(i, int(rng.integers(*length)))) for i in range(n)]


def test_tokenize_documents_puts_eos_after_each_document():
    docs = _docs(10)
    ids = tokenize_documents(docs, WORDS)
    assert ids.dtype == np.int32
    assert np.count_nonzero(ids == EOS_ID) == 10 and ids[-1] == EOS_ID
    pieces = np.split(ids, np.flatnonzero(ids == EOS_ID)[:-1] + 1)
    for piece, doc in zip(pieces, docs):
        assert WORDS.decode(piece[:-1].tolist()) == doc


def test_corpus_blocks_and_heldout_tail():
    docs = _docs()
    ids = tokenize_documents(docs, WORDS)
    src = CorpusSource(docs, WORDS, seq_len=15, heldout_fraction=0.1)
    n_blocks = ids.size // 16
    n_held = max(1, round(0.1 * n_blocks))
    assert src.num_examples("heldout") == n_held and src.num_examples("train") == n_blocks - n_held
    assert src.bayes_loss is None
    held = src.batch(range(n_held), "heldout")
    np.testing.assert_array_equal(held.ravel(), ids[(n_blocks - n_held) * 16: n_blocks * 16])
    assert held.dtype == np.int64
    with pytest.raises(IndexError):
        src.example(n_held, "heldout")


def test_corpus_epochs_are_seeded_permutations():
    docs = _docs()
    src = CorpusSource(docs, WORDS, seq_len=15, heldout_fraction=0.1, seed=3)
    n = src.num_examples("train")
    ids = tokenize_documents(docs, WORDS)
    train_blocks = ids[: n * 16].reshape(n, 16)
    epoch0, epoch1 = src.batch(range(n)), src.batch(range(n, 2 * n))
    for ep in (epoch0, epoch1):  # each epoch visits every train block exactly once
        np.testing.assert_array_equal(np.unique(ep, axis=0), np.unique(train_blocks, axis=0))
        assert len({r.tobytes() for r in ep}) == len({r.tobytes() for r in train_blocks})
    assert (epoch0 != epoch1).any()
    # Only (index, split, seed) matter: a fresh source asked in another order agrees; another seed does not.
    fresh = CorpusSource(docs, WORDS, seq_len=15, heldout_fraction=0.1, seed=3)
    order = [5 * n + 1, 2, n + 7, 3 * n - 1]
    np.testing.assert_array_equal(fresh.batch(order), np.stack([src.example(i) for i in order]))
    other = CorpusSource(docs, WORDS, seq_len=15, heldout_fraction=0.1, seed=4)
    assert (other.batch(range(n)) != epoch0).any()
    np.testing.assert_array_equal(other.batch(range(2), "heldout"), src.batch(range(2), "heldout"))


def test_corpus_too_small_is_an_error():
    with pytest.raises(ValueError, match="corpus too small"):
        CorpusSource(["ba be"], WORDS, seq_len=64)


# ---- make_source ---------------------------------------------------------------------------------------

def test_make_source_synthetic():
    src = make_source("synthetic", seq_len=24, language="synthetic-small", heldout_examples=16, seed=2)
    assert isinstance(src, SyntheticSource) and src.language == LANG and src.num_examples("heldout") == 16
    np.testing.assert_array_equal(src.example(0), SyntheticSource(LANG, 24, seed=2).example(0))
    assert make_source("synthetic", seq_len=8).language == LANGUAGES.get("synthetic")
    with pytest.raises(ValueError, match="takes no path"):
        make_source("synthetic", seq_len=8, path="x.txt")
    with pytest.raises(UnknownNameError, match="valid: .*synthetic-small"):
        make_source("synthetic", seq_len=8, language="tiny-lang")


def test_make_source_unknown_kind_lists_valid_ones():
    with pytest.raises(UnknownNameError, match="valid: corpus, synthetic"):
        make_source("synth", seq_len=8)
    assert SOURCES.names() == ["corpus", "synthetic"]


def test_make_source_corpus_trains_and_caches_bpe(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text("".join(json.dumps({"text": d}) + "\n" for d in _docs(150)))
    cache = tmp_path / "cache"
    a = make_source("corpus", seq_len=32, path=str(f), tokenizer_vocab_size=300, cache_dir=cache, seed=1)
    assert isinstance(a, CorpusSource) and len(a.tokenizer) == 300
    assert len(list(cache.glob("bpe-300-*/tokenizer.json"))) == 1 and len(list(cache.glob("tokens-*.npy"))) == 1
    b = make_source("corpus", seq_len=32, path=str(f), tokenizer_vocab_size=300, cache_dir=cache, seed=1)
    assert same_tokenizer(a.tokenizer, b.tokenizer)
    np.testing.assert_array_equal(a.batch(range(10)), b.batch(range(10)))
    uncached = make_source("corpus", seq_len=32, path=str(f), tokenizer_vocab_size=300, seed=1)
    np.testing.assert_array_equal(uncached.batch(range(10)), a.batch(range(10)))
    bpe_dir = next(cache.glob("bpe-300-*"))
    c = make_source("corpus", seq_len=32, path=str(f), tokenizer=str(bpe_dir))
    assert same_tokenizer(c.tokenizer, load_tokenizer(bpe_dir))
    with pytest.raises(ValueError, match="needs a path"):
        make_source("corpus", seq_len=8)
    # Configs carry a default language; a corpus ignores it.
    d = make_source("corpus", seq_len=32, path=str(f), tokenizer=str(bpe_dir), language="synthetic")
    np.testing.assert_array_equal(d.batch(range(3)), c.batch(range(3)))
