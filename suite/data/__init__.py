"""Data: a synthetic language with exact entropy, tokenizers, corpus readers, and the training token sources.

    from suite.data import make_source
    src = make_source("synthetic", seq_len=128)       # or make_source("corpus", seq_len=256, path="docs.jsonl")
    ex = src.batch(range(16))                         # int64 [16, 129]; inputs ex[:, :-1], labels ex[:, 1:]
"""
from .facts import FactWorld
from .corpus import MissingFieldError, read_documents
from .sources import (SOURCES, SPLITS, CorpusSource, SyntheticSource, TokenSource, make_source, source_from_config,
                      tokenize_documents)
from .synthetic import LANGUAGES, SyntheticLanguage
from .tokenizers import (BOS_ID, EOS_ID, N_SPECIAL, PAD_ID, SPECIAL_TOKENS, UNK_ID, load_tokenizer,
                         same_tokenizer, train_bpe, word_level_tokenizer)

__all__ = ["MissingFieldError", "read_documents", "SOURCES", "SPLITS", "CorpusSource", "SyntheticSource",
           "TokenSource", "make_source", "source_from_config", "tokenize_documents", "LANGUAGES",
           "SyntheticLanguage", "FactWorld", "BOS_ID",
           "EOS_ID", "N_SPECIAL", "PAD_ID", "SPECIAL_TOKENS", "UNK_ID", "load_tokenizer", "same_tokenizer",
           "train_bpe", "word_level_tokenizer"]
