"""suite.data.tokenizers: word-level (synthetic) and byte-level BPE tokenizers, loading, comparison."""
from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from suite.data import (BOS_ID, EOS_ID, LANGUAGES, N_SPECIAL, PAD_ID, SPECIAL_TOKENS, UNK_ID, load_tokenizer,
                        same_tokenizer, train_bpe, word_level_tokenizer)

LANG = LANGUAGES.get("synthetic-small")


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bpe")
    texts = [LANG.render(LANG.sample(i, 64)) for i in range(300)]
    train_bpe(texts, vocab_size=300, out_dir=out)
    return out


def test_word_level_round_trip():
    tok = word_level_tokenizer(LANG.words())
    assert len(tok) == LANG.vocab_size + N_SPECIAL == N_SPECIAL + 256
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (BOS_ID, EOS_ID, PAD_ID,
                                                                                          UNK_ID) == (0, 1, 2, 3)
    assert tok.convert_ids_to_tokens(list(range(N_SPECIAL))) == list(SPECIAL_TOKENS)
    for i in range(5):
        sym = LANG.sample(i, 100)
        ids = tok.encode(LANG.render(sym))
        np.testing.assert_array_equal(ids, sym + N_SPECIAL)  # no special tokens added on encode
        assert tok.decode(ids) == LANG.render(sym)
    assert tok.encode("notaword") == [UNK_ID]


def test_word_level_saves_and_reloads(tmp_path):
    tok = word_level_tokenizer(LANG.words(), out_dir=tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert same_tokenizer(tok, again)
    text = LANG.render(LANG.sample(9, 30))
    assert again.encode(text) == tok.encode(text)
    assert again.bos_token == SPECIAL_TOKENS[0]


def test_word_level_rejects_bad_words():
    with pytest.raises(ValueError, match="appears twice"):
        word_level_tokenizer(["ba", "be", "ba"])
    with pytest.raises(ValueError, match="whitespace"):
        word_level_tokenizer(["ba", "be di"])


def test_bpe_saves_reloads_and_round_trips(bpe_dir):
    tok = AutoTokenizer.from_pretrained(bpe_dir)
    assert len(tok) == 300
    assert tok.convert_ids_to_tokens(list(range(N_SPECIAL))) == list(SPECIAL_TOKENS)
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    for text in [LANG.render(LANG.sample(1000, 40)), "  Ünïcode, tabs\tand\nnewlines!  ", "BUDA-bege 42"]:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert BOS_ID not in ids and EOS_ID not in ids
    # The merges learned the synthetic words: their text takes far fewer tokens than bytes.
    text = LANG.render(LANG.sample(1001, 40))
    assert len(tok.encode(text)) < 0.6 * len(text.encode())


def test_bpe_rejects_a_vocab_below_the_byte_alphabet():
    with pytest.raises(ValueError, match="256 bytes"):
        train_bpe(["ab"], vocab_size=200)


def test_load_tokenizer_from_dir_and_file(bpe_dir):
    a = load_tokenizer(bpe_dir)
    b = load_tokenizer(bpe_dir / "tokenizer.json")
    text = "bada kibo"
    assert a.encode(text) == b.encode(text)
    assert same_tokenizer(a, AutoTokenizer.from_pretrained(bpe_dir))


def test_load_tokenizer_missing_path_names_it(tmp_path):
    missing = tmp_path / "no-such-tokenizer"
    with pytest.raises(FileNotFoundError, match="no-such-tokenizer"):
        load_tokenizer(str(missing))
    with pytest.raises(FileNotFoundError, match="nope"):
        load_tokenizer("./nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty.*no tokenizer files"):
        load_tokenizer(tmp_path / "empty")


def test_same_tokenizer_detects_differences(bpe_dir):
    bpe = load_tokenizer(bpe_dir)
    words = word_level_tokenizer(LANG.words())
    assert same_tokenizer(bpe, load_tokenizer(bpe_dir))
    assert same_tokenizer(words, word_level_tokenizer(LANG.words()))
    assert not same_tokenizer(bpe, words)
    assert not same_tokenizer(words, word_level_tokenizer(LANGUAGES.get("synthetic").words()))
    other_specials = word_level_tokenizer(LANG.words())
    other_specials.pad_token = SPECIAL_TOKENS[1]  # same vocabulary, different padding token
    assert other_specials.get_vocab() == words.get_vocab()
    assert not same_tokenizer(words, other_specials)
