"""Tokenizers: train a byte-level BPE, build the synthetic language's word-level one, load, compare.

    tok = word_level_tokenizer(lang.words(), out_dir="runs/x/tokenizer")  # id = N_SPECIAL + symbol
    tok = train_bpe(documents, vocab_size=1024, out_dir="runs/x/tokenizer")
    tok = load_tokenizer("runs/x/tokenizer")                              # or an HF id such as "gpt2"
    if not same_tokenizer(teacher_tok, student_tok): raise ...            # logit KD needs one vocabulary

Every tokenizer built here has the same four special tokens at ids 0..3 (BOS_ID, EOS_ID, PAD_ID, UNK_ID)
and adds none of them on encode: the token sources place BOS/EOS themselves. Saved in the Hugging Face
format, so `transformers.AutoTokenizer.from_pretrained(out_dir)` loads them.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from transformers import PreTrainedTokenizerFast

from ..refs import local_model_ref

SPECIAL_TOKENS: tuple[str, str, str, str] = ("<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>")
BOS_ID, EOS_ID, PAD_ID, UNK_ID = 0, 1, 2, 3
N_SPECIAL = len(SPECIAL_TOKENS)
_N_BYTES = 256  # byte-level BPE starts from the 256 byte symbols

# An HF hub id: "name" or "owner/name" of letters, digits, "-", "_", "." (not starting with "." or "/").
_HUB_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)?$")


def train_bpe(texts: Iterable[str], vocab_size: int, out_dir: str | os.PathLike | None = None,
              special_tokens: Sequence[str] = SPECIAL_TOKENS) -> PreTrainedTokenizerFast:
    """A byte-level BPE (GPT-2 style: any text encodes, decode(encode(t)) == t) with `vocab_size` entries.

    `special_tokens` take ids 0.. in order and are named bos, eos, pad, unk on the wrapper (first four).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    special_tokens = tuple(special_tokens)
    if vocab_size < _N_BYTES + len(special_tokens):
        raise ValueError(f"vocab_size={vocab_size} is below the {_N_BYTES} bytes + {len(special_tokens)} "
                         f"special tokens a byte-level BPE needs")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return _wrap(tok, special_tokens, out_dir)


def word_level_tokenizer(words: Sequence[str], out_dir: str | os.PathLike | None = None,
                         special_tokens: Sequence[str] = SPECIAL_TOKENS) -> PreTrainedTokenizerFast:
    """Whitespace-split words to ids: special tokens at 0..N_SPECIAL-1, then `words[i]` at N_SPECIAL + i."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    special_tokens = tuple(special_tokens)
    vocab = {t: i for i, t in enumerate(special_tokens)}
    for w in words:
        if not w or any(ch.isspace() for ch in w):
            raise ValueError(f"word {w!r} is empty or contains whitespace")
        if w in vocab:
            raise ValueError(f"word {w!r} appears twice (or is a special token)")
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=special_tokens[3] if len(special_tokens) > 3 else None))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return _wrap(tok, special_tokens, out_dir)


def load_tokenizer(spec: str | os.PathLike) -> PreTrainedTokenizerFast:
    """A tokenizer from a local directory (or tokenizer.json file) or a Hugging Face hub id."""
    from transformers import AutoTokenizer

    text = local_model_ref(str(spec))  # a GGUF file: its converted checkpoint directory
    path = Path(os.path.expanduser(text))
    if path.is_file():
        if path.suffix != ".json":
            raise ValueError(f"tokenizer {text!r} is a file but not a tokenizer.json; pass its directory")
        return PreTrainedTokenizerFast(tokenizer_file=str(path))
    if path.is_dir():
        if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json",
                                                  "tokenizer.model")):
            raise FileNotFoundError(f"tokenizer {text!r}: directory {path.resolve()} holds no tokenizer files "
                                    f"(tokenizer.json / tokenizer_config.json)")
        return AutoTokenizer.from_pretrained(str(path))
    if not _HUB_ID.match(text) or text.startswith((".", "~")):
        raise FileNotFoundError(f"tokenizer {text!r}: no such file or directory ({path.resolve()})")
    try:
        return AutoTokenizer.from_pretrained(text)
    except (OSError, ValueError) as e:
        raise OSError(f"could not load tokenizer {text!r}: no local directory of that name, and the Hugging "
                      f"Face hub lookup failed (offline or unknown id?): {e}") from e


def same_tokenizer(a: PreTrainedTokenizerFast, b: PreTrainedTokenizerFast) -> bool:
    """True when `a` and `b` map every token to the same id and agree on their special tokens."""
    return a.get_vocab() == b.get_vocab() and _specials(a) == _specials(b)


def _specials(tok) -> tuple:
    named = tuple(getattr(tok, f"{n}_token", None) for n in ("bos", "eos", "pad", "unk"))
    return named, tuple(sorted(map(str, tok.all_special_tokens)))


def _wrap(tok, special_tokens: tuple[str, ...], out_dir) -> PreTrainedTokenizerFast:
    names = dict(zip(("bos_token", "eos_token", "pad_token", "unk_token"), special_tokens))
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False, **names)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        wrapped.save_pretrained(str(out_dir))
    return wrapped
