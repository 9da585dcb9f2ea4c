"""A synthetic language whose per-token entropy is known exactly, to check a fitted irreducible loss E.

    lang = LANGUAGES.get("synthetic")               # or SyntheticLanguage(vocab_size=512, seed=0)
    docs = lang.sample_many(range(1000), 128)       # int64 [1000, 128], symbol ids in [0, vocab_size)
    lang.bayes_loss(128)                            # exact irreducible loss (nats/token) with the whole doc as context
    lang.nll(docs).mean()                           # -log p under the true source; its expectation is the above
    lang.render(docs[0])                            # "buda bege boha ..." (one pronounceable word per symbol)

The source is a random *unifilar* hidden-Markov model (a probabilistic finite automaton): state s emits
symbol x with probability e_s(x), then moves to the state δ(s, x), a function of (state, symbol). Every
document starts in state 0, so the state is a function of the prefix and the Bayes-optimal loss at
position t is exactly Σ_s P(s_t = s)·H(e_s), found by propagating the state distribution from state 0.

Structure (chosen so reaching E takes ~16 tokens of context and a learned topic model, yet stays simple):
  * states are (topic c, phase q): `n_topics` topics × Q = `n_states // n_topics` phases; state id = c·Q + q.
  * the phase is the local "syntax": phase q owns `branching` words (phases tile a random permutation of
    the vocabulary, so every word is used once Q·branching >= vocab_size), and the next phase is a random
    function of (phase, word) shared by all topics. The last word pins down the phase: a bigram model
    learns the syntax.
  * the topic is the long-range part: every topic uses the same words in a phase, but with its own
    Dirichlet profile, so a single word says little about the topic and evidence must be pooled over
    many words. The topic persists; it changes only when a state emits its one "boundary" word (set to
    probability `topic_switch`, ~50 tokens between switches at 0.02), which moves to topic τ(word).
    For the default language the best possible predictor that sees only the last k tokens is above E by
    (nats, positions 96-127): k=1 0.38, k=2 0.29, k=4 0.16, k=8 0.03, k=16 0.001; a bigram model stops at
    the first, so loss keeps falling with context and capacity.
  * each state's Dirichlet concentration is `concentration`·10^U(-1, 1): small values give
    near-deterministic states, large ones near-uniform states over the phase's words.
With n_topics=1 it is a plain random unifilar automaton over phases.

Sampling is counter-based (splitmix64 of (seed, split, stream, index, position)), so a document depends only
on those, never on call order or batch composition, and whole batches are drawn with numpy in one pass.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..registry import Registry

# Split codes mix into the sampling key: each split is its own stream, disjoint by construction.
_SPLITS = {"train": 0, "heldout": 1, "validation": 2, "test": 3}
_PROB_FLOOR = 1e-6  # every support word keeps at least this much probability, so nll is always finite

# Pronounceable syllables: 15 consonants × 5 vowels = 75; word i spells i in base 75 (1 syllable for i < 75,
# 2 for the next 5625, ...), so words are distinct, letters only, and short for small ids.
_CONSONANTS = "bdfghklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = tuple(c + v for c in _CONSONANTS for v in _VOWELS)


@dataclass(frozen=True)
class SyntheticLanguage:
    vocab_size: int = 512
    n_states: int = 256          # 8 topics × 32 phases; 32 phases × 16 words cover the 512-word vocabulary
    branching: int = 16          # words each state can emit
    concentration: float = 1.0   # median Dirichlet concentration of a state's emission profile
    seed: int = 0                # defines the automaton (the language), not the sampling stream
    n_topics: int = 8            # long-range hidden variable; n_states must be a multiple of it
    topic_switch: float = 0.02   # per-token probability of a topic boundary word (ignored with one topic)

    def __post_init__(self):
        if self.n_topics < 1 or self.n_states % self.n_topics:
            raise ValueError(f"n_states={self.n_states} must be a positive multiple of n_topics={self.n_topics}")
        if not 2 <= self.branching <= self.vocab_size:
            raise ValueError(f"branching={self.branching} must be in [2, vocab_size={self.vocab_size}]")
        if self.concentration <= 0:
            raise ValueError(f"concentration must be > 0, got {self.concentration}")
        if not 0 <= self.topic_switch < 1:
            raise ValueError(f"topic_switch must be in [0, 1), got {self.topic_switch}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    # ---- sampling -------------------------------------------------------------------------------------
    def sample(self, index: int, length: int, split: str = "train", *, stream: int = 0) -> np.ndarray:
        """One document: int64 [length], deterministic in (seed, split, stream, index)."""
        return self.sample_many([index], length, split, stream=stream)[0]

    def sample_many(self, indices: Iterable[int], length: int, split: str = "train", *,
                    stream: int = 0) -> np.ndarray:
        """Documents `indices` of `split`: int64 [len(indices), length]; row i equals sample(indices[i])."""
        idx = _document_indices(indices, length)
        t = _tables(self)
        u = _uniforms(self.seed, _split_code(split), stream, idx, length)
        out = np.empty((idx.size, length), dtype=np.int64)
        state = np.zeros(idx.size, dtype=np.int64)
        for pos in range(length):  # all documents advance together, one position per step
            j = (u[:, pos, None] >= t.cum[state]).sum(axis=1)
            np.minimum(j, self.branching - 1, out=j)  # u < 1 = cum[-1] already; guards rounding only
            out[:, pos] = t.symbol[state, j]
            state = t.next[state, j]
        return out

    # ---- exact entropies ------------------------------------------------------------------------------
    def entropy_per_position(self, length: int) -> np.ndarray:
        """Exact E[-log p(x_t | x_<t)] for t < length (nats), for a document started in state 0."""
        t = _tables(self)
        p = np.zeros(self.n_states)
        p[0] = 1.0
        out = np.empty(length)
        for pos in range(length):
            out[pos] = p @ t.entropy
            p = p @ t.transition
        return out

    def bayes_loss(self, length: int) -> float:
        """Irreducible mean loss over `length` positions for a model that sees the whole document."""
        return float(self.entropy_per_position(length).mean())

    def entropy_rate(self) -> float:
        """Long-document limit Σ_s π(s)·H(e_s), π the limiting state occupancy from state 0."""
        t = _tables(self)
        # The lazy chain (I+T)/2 is aperiodic with the same stationary laws; 2^60 steps by squaring.
        m = 0.5 * (np.eye(self.n_states) + t.transition)
        for _ in range(60):
            m = m @ m
            m /= m.sum(axis=1, keepdims=True)  # squaring 60 times would otherwise amplify rounding
            m /= m.sum(axis=1, keepdims=True)  # squaring 60 times would otherwise amplify rounding
        return float(m[0] @ t.entropy)

    def unigram_entropy(self, length: int) -> float:
        """Entropy of the position-averaged word distribution: the loss of the best context-free model."""
        t = _tables(self)
        p = np.zeros(self.n_states)
        p[0] = 1.0
        occ = np.zeros(self.n_states)
        for _ in range(length):
            occ += p
            p = p @ t.transition
        freq = (occ / length) @ t.emission
        nz = freq[freq > 0]
        return float(-(nz * np.log(nz)).sum())

    def nll(self, symbols: np.ndarray) -> np.ndarray:
        """Exact -log p(x_t | x_<t) under the source for each position, document(s) started in state 0.

        `symbols` is [length] or [n, length]; the result has the same shape (float64, nats). A sequence the
        source cannot produce gets +inf from its first impossible symbol on.
        """
        x = np.asarray(symbols, dtype=np.int64)
        one = x.ndim == 1
        x2 = x[None] if one else x
        if x2.ndim != 2:
            raise ValueError(f"symbols must be [length] or [n, length], got shape {x.shape}")
        if x2.size and (x2.min() < 0 or x2.max() >= self.vocab_size):
            raise ValueError(f"symbols must be in [0, {self.vocab_size})")
        t = _tables(self)
        out = np.empty(x2.shape)
        state = np.zeros(x2.shape[0], dtype=np.int64)
        dead = np.zeros(x2.shape[0], dtype=bool)
        for pos in range(x2.shape[1]):
            sym = x2[:, pos]
            out[:, pos] = t.neglogp[state, sym]
            nxt = t.dense_next[state, sym]
            dead |= nxt < 0
            out[dead, pos] = np.inf
            state = np.where(dead, 0, nxt)
        return out[0] if one else out

    # ---- words --------------------------------------------------------------------------------------
    def word(self, symbol: int) -> str:
        if not 0 <= symbol < self.vocab_size:
            raise ValueError(f"symbol {symbol} out of range [0, {self.vocab_size})")
        return _word(int(symbol))

    def words(self) -> list[str]:
        """Word i spells symbol i; the same for every language of this vocab_size."""
        return list(_words(self.vocab_size))

    def render(self, symbols: Iterable[int]) -> str:
        """The document as text: one word per symbol, joined by single spaces."""
        ws = _words(self.vocab_size)
        return " ".join(ws[int(s)] for s in np.asarray(symbols).ravel())


@dataclass(frozen=True, eq=False)
class _Tables:
    symbol: np.ndarray      # [S, b] int64: word emitted by choice j of state s
    cum: np.ndarray         # [S, b] float64: cumulative emission probabilities, last column exactly 1
    next: np.ndarray        # [S, b] int64: δ(s, symbol[s, j])
    emission: np.ndarray    # [S, V] float64: e_s(x), zero off the support
    entropy: np.ndarray     # [S] float64: H(e_s) in nats
    transition: np.ndarray  # [S, S] float64: P(s -> s')
    neglogp: np.ndarray     # [S, V] float64: -log e_s(x), inf off the support
    dense_next: np.ndarray  # [S, V] int64: δ(s, x), -1 off the support


@functools.lru_cache(maxsize=32)
def _tables(lang: SyntheticLanguage) -> _Tables:
    """The automaton of `lang`; built once per distinct parameter set (milliseconds)."""
    S, V, b, K = lang.n_states, lang.vocab_size, lang.branching, lang.n_topics
    Q = S // K
    rng = np.random.default_rng([lang.seed, 0x5EED])
    # Phase word sets are windows on a random permutation of the vocabulary, spaced V/Q apart: disjoint
    # when Q·b <= V (words past Q·b never occur), overlapping (a word in two phases) when Q·b > V.
    perm = rng.permutation(V)
    starts = np.floor(np.arange(Q) * (V / Q)).astype(np.int64)
    phase_words = perm[(starts[:, None] + np.arange(b)) % V]               # [Q, b]
    phase_next = rng.integers(Q, size=(Q, b))                              # next phase after word j of q
    topic_of_boundary = rng.integers(K, size=V)                            # τ(word)

    symbol = np.empty((S, b), dtype=np.int64)
    prob = np.empty((S, b))
    nxt = np.empty((S, b), dtype=np.int64)
    for s in range(S):
        c, q = divmod(s, Q)
        support = phase_words[q]
        alpha = lang.concentration * 10.0 ** rng.uniform(-1.0, 1.0)
        p = rng.dirichlet(np.full(b, alpha))
        p = (p + _PROB_FLOOR) / (p + _PROB_FLOOR).sum()
        topics = np.full(b, c)
        if K > 1 and lang.topic_switch > 0:
            jb = int(rng.integers(b))
            rest = np.delete(p, jb)
            p = np.insert(rest / rest.sum() * (1.0 - lang.topic_switch), jb, lang.topic_switch)
            topics[jb] = topic_of_boundary[support[jb]]
        symbol[s], prob[s] = support, p
        nxt[s] = topics * Q + phase_next[q]

    cum = np.cumsum(prob, axis=1)
    cum[:, -1] = 1.0
    rows = np.arange(S)[:, None]
    emission = np.zeros((S, V))
    emission[rows, symbol] = prob
    entropy = -(prob * np.log(prob)).sum(axis=1)
    transition = np.zeros((S, S))
    np.add.at(transition, (np.broadcast_to(rows, nxt.shape), nxt), prob)
    neglogp = np.full((S, V), np.inf)
    neglogp[rows, symbol] = -np.log(prob)
    dense_next = np.full((S, V), -1, dtype=np.int64)
    dense_next[rows, symbol] = nxt
    for a in (symbol, cum, nxt, emission, entropy, transition, neglogp, dense_next):
        a.setflags(write=False)
    return _Tables(symbol, cum, nxt, emission, entropy, transition, neglogp, dense_next)


def _document_indices(indices: Iterable[int], length: int) -> np.ndarray:
    """`indices` as int64 [n], checked (one-dimensional, >= 0) together with `length` (>= 0)."""
    idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
    if idx.ndim != 1:
        raise ValueError(f"indices must be one-dimensional, got shape {idx.shape}")
    if idx.size and idx.min() < 0:
        raise ValueError(f"indices must be >= 0, got {int(idx.min())}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    return idx


def _split_code(split: str) -> int:
    try:
        return _SPLITS[split]
    except KeyError:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(_SPLITS)}") from None


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective avalanche hash on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniforms(seed: int, split: int, stream: int, indices: np.ndarray, length: int) -> np.ndarray:
    """U[0, 1) float64 [len(indices), length]: a splitmix64 stream per document keyed by all four ints."""
    with np.errstate(over="ignore"):
        key = np.uint64(0)
        for part in (seed, split, stream):
            key = _mix64(np.asarray(key ^ np.uint64(part % 2**64), dtype=np.uint64) + _GOLDEN)
        keys = _mix64((key ^ indices.astype(np.uint64)) + _GOLDEN)                    # [n]
        ctr = (np.arange(1, length + 1, dtype=np.uint64) * _GOLDEN)                     # [length]
        bits = _mix64(keys[:, None] + ctr[None, :])
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


@functools.lru_cache(maxsize=8)
def _words(vocab_size: int) -> tuple[str, ...]:
    return tuple(_word(i) for i in range(vocab_size))


def _word(i: int) -> str:
    n = len(_SYLLABLES)
    parts = []
    i += 1  # bijective base-75: 1..75 -> one syllable, 76..5700 -> two, ...
    while i > 0:
        i, r = divmod(i - 1, n)
        parts.append(_SYLLABLES[r])
    return "".join(reversed(parts))


LANGUAGES: Registry[SyntheticLanguage] = Registry("synthetic language")
# Presets (nats): bayes_loss(128) / unigram entropy / entropy_rate:
#   synthetic-small 2.178 / 5.152 / 2.205  (4 topics × 16 phases)
#   synthetic       2.158 / 6.021 / 2.207  (8 topics × 32 phases; the dataclass defaults)
LANGUAGES.register("synthetic-small", SyntheticLanguage(vocab_size=256, n_states=64, n_topics=4))
LANGUAGES.register("synthetic", SyntheticLanguage())
