"""A synthetic world of Zipf-distributed facts with an exact Bayes loss: the scaling-law lab's data.

    world = LANGUAGES.get("facts")                  # or FactWorld(n_entities=65536, zipf=1.4, ...)
    docs = world.sample_many(range(1000), 128)      # int64 [1000, 128], symbol ids in [0, vocab_size)
    world.bayes_loss(128)                           # exact irreducible loss (nats/token)
    world.nll(docs).mean()                          # -log p under the true source; its expectation is the above

Why this shape. The `synthetic` HMM language is learned whole by ~0.1M parameters after ~1M tokens, so
beyond that neither N nor D matters and no scaling law can be identified. Power laws need a learnable
structure with a long tail: the quantization model of neural scaling (Michaud et al. 2023) gets them from
many independent pieces of knowledge ("quanta") whose use frequencies follow a Zipf law. A model learns
the most frequent quanta first; the loss above E is the probability mass of the quanta it has not yet
learned. If it can hold n of them and quantum k is used with p_k ∝ k^-s, the excess is ∝ n^(1-s):
  * capacity: n ∝ N (Allen-Zhu & Li 2024: a trained LM stores a roughly constant ~2 bits of knowledge
    per parameter), so L - E ∝ N^-(s-1);
  * data: quantum k is learned once seen ~τ times, p_k·D ≳ τ, so n ∝ D^(1/s) and L - E ∝ D^-(s-1)/s.
With s = 1.4 that is alpha ≈ 0.4 and beta ≈ 0.29, close to Chinchilla's 0.34 / 0.28.

The world. There are `n_entities` entities, each with `n_attributes` attributes; attribute j of entity k
has a fixed random value among `n_values` (attribute j owns its own alphabet of `n_values` words). A
document is a run of independent records `name_1 .. name_L  v_1 .. v_m`: the entity is drawn with
probability p_k ∝ (k + zipf_offset)^-zipf (ranks in random name order), its name is L words of a
`name_alphabet`-word alphabet (a random injective code), then each attribute value follows in order. A
value is the entity's own with probability 1 - noise, else uniform over the attribute's alphabet: the
noise keeps E well above zero and makes a teacher's soft labels worth more than the sampled token (the
mechanism by which distillation helps). Memorising the attributes of the top n entities is the capacity
ladder; knowing the name distribution (which names exist, how often) is a second Zipf ladder.

Exact loss per position (a document starts at a record boundary; the last record may be cut short):
  name word i: H(name_i | name_<i) from the Zipf law over names (prefix marginals);
  value word:  H_noise = -(q log q + (n_values-1)·r log r), q = 1 - noise + noise/n_values, r = noise/n_values.
Sampling is counter-based (the same splitmix64 streams as `synthetic`): one uniform per position, so a
document depends only on (seed, split, stream, index).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .synthetic import LANGUAGES, _document_indices, _split_code, _uniforms, _words


@dataclass(frozen=True)
class FactWorld:
    n_entities: int = 65536
    zipf: float = 1.4              # p_k ∝ (k + zipf_offset)^-zipf over entity ranks k = 1..n_entities
    zipf_offset: float = 4.0       # flattens the head: the top entity gets ~9% of records, not ~30%
    name_alphabet: int = 256       # words for names; names are name_length words (256² = 65,536 names)
    name_length: int = 2
    n_attributes: int = 6          # value words per record; record length = name_length + n_attributes
    n_values: int = 40             # words per attribute alphabet (log 40 = 3.69 nats unlearned)
    noise: float = 0.3             # probability that a value is uniform instead of the entity's own
    seed: int = 0                  # defines the world (names, facts), not the sampling stream

    def __post_init__(self):
        if self.name_length < 1 or self.name_alphabet < 2:
            raise ValueError("name_length must be >= 1 and name_alphabet >= 2")
        if not 1 <= self.n_entities <= self.name_alphabet ** self.name_length:
            raise ValueError(f"n_entities={self.n_entities} must be in [1, name_alphabet**name_length="
                             f"{self.name_alphabet ** self.name_length}] (names must be distinct)")
        if self.n_attributes < 1 or self.n_values < 2:
            raise ValueError("n_attributes must be >= 1 and n_values >= 2")
        if self.zipf <= 0 or self.zipf_offset < 0:
            raise ValueError(f"zipf must be > 0 and zipf_offset >= 0, got {self.zipf}, {self.zipf_offset}")
        if not 0 <= self.noise < 1:
            raise ValueError(f"noise must be in [0, 1), got {self.noise}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    @property
    def vocab_size(self) -> int:
        return self.name_alphabet + self.n_attributes * self.n_values

    @property
    def record_length(self) -> int:
        return self.name_length + self.n_attributes

    # ---- sampling -------------------------------------------------------------------------------------
    def sample(self, index: int, length: int, split: str = "train", *, stream: int = 0) -> np.ndarray:
        return self.sample_many([index], length, split, stream=stream)[0]

    def sample_many(self, indices: Iterable[int], length: int, split: str = "train", *,
                    stream: int = 0) -> np.ndarray:
        """Documents `indices` of `split`: int64 [len(indices), length]; row i equals sample(indices[i])."""
        idx = _document_indices(indices, length)
        t = _fact_tables(self)
        L, m, r = self.name_length, self.n_attributes, self.record_length
        u = _uniforms(self.seed, _split_code(split), stream, idx, length)
        n_rec = -(-length // r)
        pad = n_rec * r - length
        if pad:  # the last record is cut short: draw it whole, keep its head
            u = np.concatenate([u, np.zeros((idx.size, pad))], axis=1)
        u = u.reshape(idx.size, n_rec, r)
        # the entity comes from the first name position's uniform (inverse CDF over ranks)
        ent = np.minimum(np.searchsorted(t.cum, u[:, :, 0], side="right"), self.n_entities - 1)
        out = np.empty((idx.size, n_rec, r), dtype=np.int64)
        out[:, :, :L] = t.names[ent]
        uv = u[:, :, L:]                                                   # [n, n_rec, m]
        val = t.values[ent]                                                # [n, n_rec, m] in [0, n_values)
        if self.noise > 0:  # u in [1 - noise, 1): a uniform value, (u - (1 - noise)) / noise scaled to n_values
            rand = np.clip(((uv - (1.0 - self.noise)) / self.noise * self.n_values), 0, self.n_values - 1)
            val = np.where(uv < 1.0 - self.noise, val, rand.astype(np.int64))
        out[:, :, L:] = self.name_alphabet + np.arange(m) * self.n_values + val
        return out.reshape(idx.size, n_rec * r)[:, :length]

    # ---- exact entropies ------------------------------------------------------------------------------
    def record_entropy(self) -> np.ndarray:
        """Exact conditional entropy (nats) of each position of a record given the record so far."""
        t = _fact_tables(self)
        return np.concatenate([t.name_entropy, np.full(self.n_attributes, self.value_entropy())])

    def value_entropy(self) -> float:
        q = 1.0 - self.noise + self.noise / self.n_values
        r = self.noise / self.n_values
        return float(-(q * np.log(q) + (self.n_values - 1) * (r * np.log(r) if r > 0 else 0.0)))

    def entropy_per_position(self, length: int) -> np.ndarray:
        """Exact E[-log p(x_t | x_<t)] for t < length (nats); records are independent of one another."""
        return self.record_entropy()[np.arange(length) % self.record_length]

    def bayes_loss(self, length: int) -> float:
        """Irreducible mean loss over `length` positions for a model that sees the whole document."""
        return float(self.entropy_per_position(length).mean())

    def entropy_rate(self) -> float:
        return float(self.record_entropy().mean())

    def nll(self, symbols: np.ndarray) -> np.ndarray:
        """Exact -log p(x_t | x_<t) under the source for each position; [length] or [n, length] -> same shape.
        A symbol the source cannot produce there gets +inf."""
        x = np.asarray(symbols, dtype=np.int64)
        one = x.ndim == 1
        x2 = x[None] if one else x
        if x2.ndim != 2:
            raise ValueError(f"symbols must be [length] or [n, length], got shape {x.shape}")
        if x2.size and (x2.min() < 0 or x2.max() >= self.vocab_size):
            raise ValueError(f"symbols must be in [0, {self.vocab_size})")
        t = _fact_tables(self)
        L, m, r, A, nv = self.name_length, self.n_attributes, self.record_length, self.name_alphabet, self.n_values
        n, length = x2.shape
        n_rec = -(-length // r)
        pad = n_rec * r - length
        xr = np.concatenate([x2, np.zeros((n, pad), dtype=np.int64)], axis=1).reshape(n, n_rec, r)
        out = np.zeros((n, n_rec, r))
        names = xr[:, :, :L]
        ok = np.ones((n, n_rec), dtype=bool)      # the record so far is one the source can produce
        code = np.zeros((n, n_rec), dtype=np.int64)
        prev_mass = np.ones((n, n_rec))
        for i in range(L):                                                 # -log P(name_i | name_<i)
            is_name = names[:, :, i] < A
            code = code * A + np.where(is_name, names[:, :, i], 0)
            mass = np.where(is_name, t.prefix_mass[i][code], 0.0)            # a value word here: impossible
            ok &= mass > 0
            safe = np.where(ok, mass, 1.0)
            out[:, :, i] = np.where(ok, np.log(prev_mass) - np.log(safe), np.inf)
            prev_mass = safe
        ent = np.where(ok, t.entity_of_code.get(code), 0)
        for j in range(m):
            w = xr[:, :, L + j] - A - j * nv
            in_alpha = (w >= 0) & (w < nv)
            own = t.values[ent, j] == w
            p = np.where(own, 1.0 - self.noise + self.noise / nv, self.noise / nv)
            with np.errstate(divide="ignore"):
                out[:, :, L + j] = np.where(in_alpha & ok, -np.log(p), np.inf)   # after an impossible name: inf
        out = out.reshape(n, n_rec * r)[:, :length]
        return out[0] if one else out

    # ---- words --------------------------------------------------------------------------------------
    def word(self, symbol: int) -> str:
        if not 0 <= symbol < self.vocab_size:
            raise ValueError(f"symbol {symbol} out of range [0, {self.vocab_size})")
        return _words(self.vocab_size)[int(symbol)]

    def words(self) -> list[str]:
        return list(_words(self.vocab_size))

    def render(self, symbols: Iterable[int]) -> str:
        ws = _words(self.vocab_size)
        return " ".join(ws[int(s)] for s in np.asarray(symbols).ravel())

    def entity_probs(self) -> np.ndarray:
        """p_k of entity rank k = 1..n_entities (float64, sums to 1)."""
        return _fact_tables(self).probs.copy()


class _CodeMap:
    """name code (base-`name_alphabet` integer) -> entity rank, for the codes in use."""

    def __init__(self, codes: np.ndarray):
        self._order = np.argsort(codes)
        self._sorted = codes[self._order]

    def get(self, code: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(self._sorted, code), 0, self._sorted.size - 1)
        return self._order[i]


@dataclass(frozen=True, eq=False)
class _FactTables:
    probs: np.ndarray          # [K] entity probabilities by rank
    cum: np.ndarray            # [K] cumulative, last exactly 1
    names: np.ndarray          # [K, L] name words of entity k (in [0, name_alphabet))
    values: np.ndarray         # [K, m] the entity's own value index per attribute (in [0, n_values))
    prefix_mass: tuple         # L arrays: [A^(i+1)] probability mass of each name prefix of length i+1
    name_entropy: np.ndarray   # [L] H(name_i | name_<i)
    entity_of_code: _CodeMap


@functools.lru_cache(maxsize=16)
def _fact_tables(w: FactWorld) -> _FactTables:
    """The world of `w`: names, facts and name-prefix marginals (tens of milliseconds for 65k entities)."""
    K, L, A = w.n_entities, w.name_length, w.name_alphabet
    rng = np.random.default_rng([w.seed, 0xFAC7])
    ranks = np.arange(1, K + 1, dtype=np.float64)
    probs = (ranks + w.zipf_offset) ** -w.zipf
    probs /= probs.sum()
    cum = np.cumsum(probs)
    cum[-1] = 1.0
    codes = rng.choice(A ** L, size=K, replace=False).astype(np.int64)   # injective random names
    names = np.stack([(codes // A ** (L - 1 - i)) % A for i in range(L)], axis=1)
    values = rng.integers(w.n_values, size=(K, w.n_attributes))
    prefix_mass, name_entropy, prev_h = [], [], 0.0
    for i in range(L):
        prefix = codes // A ** (L - 1 - i)
        mass = np.bincount(prefix, weights=probs, minlength=A ** (i + 1))
        prefix_mass.append(mass)
        nz = mass[mass > 0]
        h = float(-(nz * np.log(nz)).sum())   # H(name_1..i); the conditional is the increment
        name_entropy.append(h - prev_h)
        prev_h = h
    for a in (probs, cum, names, values, *prefix_mass):
        a.setflags(write=False)
    return _FactTables(probs, cum, names, values, tuple(prefix_mass), np.asarray(name_entropy), _CodeMap(codes))


# Presets (nats): bayes_loss(128) — see tests/data/test_facts.py for the Monte Carlo check.
LANGUAGES.register("facts", FactWorld())
LANGUAGES.register("facts-small", FactWorld(n_entities=4096, name_alphabet=64, n_attributes=4, n_values=32))
