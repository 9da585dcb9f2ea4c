"""Token sources: what the training loop reads. Examples are pure functions of (index, split, seed).

    src = make_source("synthetic", seq_len=128)                          # language preset "synthetic"
    src = make_source("corpus", seq_len=256, path="data/train.jsonl")    # BPE trained on the train documents
    ex = src.example(7)                      # int64 [seq_len + 1]; model input ex[:-1], labels ex[1:]
    xb = src.batch(range(0, 16), "train")    # int64 [16, seq_len + 1]
    src.num_examples("heldout")              # finite; num_examples("train") is None for synthetic data
    src.bayes_loss                           # exact irreducible loss per predicted token (synthetic), else None

Because an example depends only on (index, split, seed) — never on call order, batch composition, or
which process asks — ranks of a distributed run can split indices freely and a resumed run continues at
the next index. Finite train data wraps: index i is example (i mod n) of epoch i // n, each epoch a fresh
permutation seeded by (seed, epoch). Heldout examples never depend on the seed, so runs with different
data seeds are evaluated on the same tokens.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
from transformers import PreTrainedTokenizerFast

from .._io import mkdtemp, mkstemp
from ..registry import Registry
from .corpus import read_documents
from .facts import FactWorld  # registers the `facts` presets in LANGUAGES
from .synthetic import LANGUAGES, SyntheticLanguage
from .tokenizers import N_SPECIAL, SPECIAL_TOKENS, load_tokenizer, train_bpe, word_level_tokenizer

SPLITS = ("train", "heldout")
_ENCODE_CHUNK = 1024  # documents per encode_batch call: bounds peak memory of the Encoding objects


@runtime_checkable
class TokenSource(Protocol):
    seq_len: int                      # tokens per training example; each example has seq_len + 1 ids
    tokenizer: PreTrainedTokenizerFast
    bayes_loss: float | None          # irreducible per-token loss when known (synthetic), else None

    def example(self, index: int, split: str = "train") -> np.ndarray: ...

    def batch(self, indices: Sequence[int], split: str = "train") -> np.ndarray: ...

    def num_examples(self, split: str) -> int | None: ...


class SyntheticSource:
    """`[bos] + (symbols + N_SPECIAL)` with `seq_len` symbols of `language`: all of them are predicted,
    so the mean loss over labels ex[1:] has expectation exactly `bayes_loss = language.bayes_loss(seq_len)`.

    Train: unbounded, document `index` of the language's "train" split in stream `seed`. Heldout:
    `heldout_examples` documents of its "heldout" split (disjoint by construction, independent of seed).
    """

    def __init__(self, language: SyntheticLanguage | FactWorld, seq_len: int, heldout_examples: int = 256,
                 tokenizer_dir: str | os.PathLike | None = None, seed: int = 0):
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if heldout_examples < 1:
            raise ValueError(f"heldout_examples must be >= 1, got {heldout_examples}")
        self.language = language
        self.seq_len = int(seq_len)
        self.heldout_examples = int(heldout_examples)
        self.seed = int(seed)
        self.tokenizer = word_level_tokenizer(language.words(), out_dir=tokenizer_dir)
        self.vocab_size = len(self.tokenizer)
        self.bayes_loss: float | None = language.bayes_loss(self.seq_len)
        self._bos = self.tokenizer.bos_token_id
        self._heldout_bayes: float | None = None

    def num_examples(self, split: str) -> int | None:
        return None if _check_split(split) == "train" else self.heldout_examples

    def example(self, index: int, split: str = "train") -> np.ndarray:
        return self.batch([index], split)[0]

    def batch(self, indices: Sequence[int], split: str = "train") -> np.ndarray:
        idx = _check_indices(indices, self.num_examples(split), split)
        stream = self.seed if split == "train" else 0
        symbols = self.language.sample_many(idx, self.seq_len, split, stream=stream)
        out = np.empty((idx.size, self.seq_len + 1), dtype=np.int64)
        out[:, 0] = self._bos
        out[:, 1:] = symbols + N_SPECIAL
        return out

    @property
    def heldout_bayes_loss(self) -> float:
        """The true source's mean loss on exactly the heldout examples: E without their sampling noise."""
        if self._heldout_bayes is None:
            ex = self.batch(range(self.heldout_examples), "heldout")
            self._heldout_bayes = float(self.language.nll(ex[:, 1:] - N_SPECIAL).mean())
        return self._heldout_bayes


class CorpusSource:
    """Documents tokenized (no special tokens), each followed by eos, concatenated and cut into blocks of
    seq_len + 1 ids (the remainder dropped). The last `heldout_fraction` of blocks (at least one) are heldout.
    """

    def __init__(self, documents: Sequence[str], tokenizer: PreTrainedTokenizerFast, seq_len: int,
                 heldout_fraction: float = 0.05, seed: int = 0):
        self._setup(tokenize_documents(documents, tokenizer), tokenizer, seq_len, heldout_fraction, seed)

    @classmethod
    def from_token_ids(cls, token_ids: np.ndarray, tokenizer: PreTrainedTokenizerFast, seq_len: int,
                       heldout_fraction: float = 0.05, seed: int = 0) -> "CorpusSource":
        """A source over an already tokenized stream (as `tokenize_documents` returns)."""
        self = cls.__new__(cls)
        self._setup(np.asarray(token_ids), tokenizer, seq_len, heldout_fraction, seed)
        return self

    def _setup(self, ids: np.ndarray, tokenizer, seq_len: int, heldout_fraction: float, seed: int) -> None:
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if not 0 < heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seq_len, self.tokenizer, self.seed = int(seq_len), tokenizer, int(seed)
        self.vocab_size = len(tokenizer)
        self.bayes_loss: float | None = None
        width = self.seq_len + 1
        n_blocks = ids.size // width
        n_heldout = max(1, int(round(n_blocks * heldout_fraction)))
        if n_blocks - n_heldout < 1:
            raise ValueError(f"corpus too small: {ids.size} tokens make {n_blocks} blocks of {width} "
                             f"(seq_len + 1); need at least one train and one heldout block")
        self._blocks = ids[: n_blocks * width].reshape(n_blocks, width)
        self._n_train = n_blocks - n_heldout
        self._n_heldout = n_heldout
        self._perms: dict[int, np.ndarray] = {}

    def num_examples(self, split: str) -> int | None:
        return self._n_train if _check_split(split) == "train" else self._n_heldout

    def example(self, index: int, split: str = "train") -> np.ndarray:
        return self.batch([index], split)[0]

    def batch(self, indices: Sequence[int], split: str = "train") -> np.ndarray:
        if _check_split(split) == "heldout":
            idx = _check_indices(indices, self._n_heldout, split)
            return self._blocks[self._n_train + idx].astype(np.int64)
        idx = _check_indices(indices, None, split)
        epoch, pos = np.divmod(idx, self._n_train)
        rows = np.empty_like(idx)
        for e in np.unique(epoch):
            sel = epoch == e
            rows[sel] = self._permutation(int(e))[pos[sel]]
        return self._blocks[rows].astype(np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:
            if len(self._perms) >= 4:  # a batch spans at most two epochs; keep a few for interleaved callers
                self._perms.pop(next(iter(self._perms)))
            perm = self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self._n_train)
        return perm


def tokenize_documents(documents: Sequence[str], tokenizer) -> np.ndarray:
    """One id stream: each document's ids (no special tokens added) followed by eos; int32 when it fits."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos token; CorpusSource needs one to separate documents")
    dtype = np.int32 if len(tokenizer) < 2**31 else np.int64
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pieces: list[np.ndarray] = []
    eos_arr = np.array([eos], dtype=dtype)
    for start in range(0, len(documents), _ENCODE_CHUNK):
        chunk = list(documents[start:start + _ENCODE_CHUNK])
        if backend is not None:
            encoded = [e.ids for e in backend.encode_batch(chunk, add_special_tokens=False)]
        else:
            encoded = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        for ids in encoded:
            pieces.append(np.asarray(ids, dtype=dtype))
            pieces.append(eos_arr)
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)


# ---- construction from a config ------------------------------------------------------------------------

SOURCES: Registry = Registry("data source")


def make_source(kind: str, *, seq_len: int, seed: int = 0, language: str | None = None, path: str | None = None,
                tokenizer: str | None = None, text_field: str = "text", heldout_examples: int = 256,
                heldout_fraction: float = 0.05, tokenizer_vocab_size: int = 1024,
                cache_dir: str | os.PathLike | None = None) -> TokenSource:
    """The token source a config names. kind "synthetic": `language` is a LANGUAGES preset (default
    "synthetic"); a path or tokenizer is an error. kind "corpus": `path` is a file, directory or `hf:` id;
    `tokenizer` an HF id or path, or None to train a byte-level BPE of `tokenizer_vocab_size` on the train
    documents (cached, with the token ids, in cache_dir); `language` is ignored (configs carry a default)."""
    factory = SOURCES.get(kind)
    return factory(seq_len=seq_len, seed=seed, language=language, path=path, tokenizer=tokenizer,
                   text_field=text_field, heldout_examples=heldout_examples, heldout_fraction=heldout_fraction,
                   tokenizer_vocab_size=tokenizer_vocab_size, cache_dir=cache_dir)


def source_from_config(d, tokenizer: str | None = None, cache_dir: str | os.PathLike | None = None) -> TokenSource:
    """The source of a cell's `data:` section (a config.DataConfig); `tokenizer` is the resolved spec (the
    caller decides what a corpus without `data.tokenizer` is tokenized with)."""
    return make_source(d.kind, seq_len=d.seq_len, seed=d.seed, language=d.language, path=d.path, tokenizer=tokenizer,
                       text_field=d.text_field, heldout_examples=d.heldout_examples,
                       heldout_fraction=d.heldout_fraction, tokenizer_vocab_size=d.tokenizer_vocab_size,
                       cache_dir=cache_dir)


@SOURCES.register("synthetic")
def _synthetic_source(*, seq_len, seed, language, path, tokenizer, heldout_examples, **_) -> SyntheticSource:
    for name, value in (("path", path), ("tokenizer", tokenizer)):
        if value is not None:
            raise ValueError(f"data kind 'synthetic' takes no {name} (got {value!r}); it has its own "
                             f"word-level tokenizer. Use kind 'corpus' for text files.")
    lang = LANGUAGES.get(language or "synthetic")
    return SyntheticSource(lang, seq_len, heldout_examples=heldout_examples, seed=seed)


@SOURCES.register("corpus")
def _corpus_source(*, seq_len, seed, path, tokenizer, text_field, heldout_fraction,
                   tokenizer_vocab_size, cache_dir, **_) -> CorpusSource:
    if not path:
        raise ValueError("data kind 'corpus' needs a path (a .txt/.jsonl/.parquet file, a directory, or hf:<id>)")
    docs = read_documents(path, text_field=text_field)
    if not docs:
        raise ValueError(f"corpus {path!r} has no non-empty documents")
    cache = Path(cache_dir) if cache_dir is not None else None
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer)
    else:
        # The heldout blocks come from the end of the stream, so the BPE sees only the leading documents.
        n_fit = max(1, int(len(docs) * (1.0 - heldout_fraction)))
        tok = _cached_bpe(docs[:n_fit], tokenizer_vocab_size, cache)
    if cache is None:
        return CorpusSource(docs, tok, seq_len, heldout_fraction=heldout_fraction, seed=seed)
    key = _digest(_docs_digest(docs), tok.backend_tokenizer.to_str())
    ids_path = cache / f"tokens-{key}.npy"
    if ids_path.exists():
        ids = np.load(ids_path, mmap_mode="r")
    else:
        ids = tokenize_documents(docs, tok)
        _atomic_save_npy(ids_path, ids)
    return CorpusSource.from_token_ids(ids, tok, seq_len, heldout_fraction=heldout_fraction, seed=seed)


def _cached_bpe(docs: list[str], vocab_size: int, cache: Path | None) -> PreTrainedTokenizerFast:
    if cache is None:
        return train_bpe(docs, vocab_size)
    final = cache / f"bpe-{vocab_size}-{_digest(_docs_digest(docs), repr(SPECIAL_TOKENS))}"
    if not (final / "tokenizer.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = mkdtemp(cache, f".{final.name}.")
        train_bpe(docs, vocab_size, out_dir=tmp)
        try:
            os.rename(tmp, final)  # first writer wins; concurrent ranks then load its copy
        except OSError:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return load_tokenizer(final)


def _docs_digest(docs: Sequence[str]) -> str:
    h = hashlib.sha256()
    for d in docs:
        b = d.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = mkstemp(path.parent, f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return split


def _check_indices(indices: Sequence[int], n: int | None, split: str) -> np.ndarray:
    idx = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices), dtype=np.int64).reshape(-1)
    if idx.size and idx.min() < 0:
        raise IndexError(f"example index {int(idx.min())} < 0")
    if n is not None and idx.size and idx.max() >= n:
        raise IndexError(f"{split} example {int(idx.max())} out of range: the {split} split has {n} examples")
    return idx
