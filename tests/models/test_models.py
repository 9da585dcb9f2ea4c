"""Model table, non-embedding parameter counts, loading errors, safetensors io."""
import re

import pytest
import torch

from suite.models import (TINY, HiddenStatesLM, build_model, count_non_embedding, count_parameters,
                          forward_flops_per_token, save_pretrained)


def _nominal(name: str) -> float:
    return float(re.search(r"-([0-9.]+)M$", name).group(1)) * 1e6


@pytest.mark.parametrize("name", TINY.names())
def test_tiny_names_match_their_non_embedding_counts(name):
    model = build_model(name, vocab_size=300, seed=0)
    n = count_non_embedding(model)
    assert 0.75 * _nominal(name) <= n <= 1.25 * _nominal(name), (name, n)


def test_non_embedding_count_excludes_embeddings_and_head():
    model = build_model("tiny-0.1M", vocab_size=1000, seed=0)
    d = model.config.hidden_size
    assert count_parameters(model) - count_non_embedding(model) == 2 * 1000 * d
    # hand count for the llama block: 4 d² attention, 3·d·ffn MLP, two norms per layer, final norm
    L, f = model.config.num_hidden_layers, model.config.intermediate_size
    assert count_non_embedding(model) == L * (4 * d * d + 3 * d * f + 2 * d) + d
    bigger_vocab = build_model("tiny-0.1M", vocab_size=5000, seed=0)
    assert count_non_embedding(bigger_vocab) == count_non_embedding(model)


def test_building_is_seeded():
    a, b = build_model("tiny-0.1M", 100, seed=3), build_model("tiny-0.1M", 100, seed=3)
    c = build_model("tiny-0.1M", 100, seed=4)
    pa, pb, pc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_unknown_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_model(str(tmp_path))


def test_hidden_states_times_head_equals_logits():
    model = build_model("qwen2-0.1M", vocab_size=120, seed=0).eval()
    x = torch.randint(0, 120, (2, 9))
    wrapped = HiddenStatesLM(model)
    torch.testing.assert_close(wrapped(x) @ wrapped.head_weight.t(), model(input_ids=x).logits, rtol=1e-5, atol=1e-5)


def test_save_pretrained_roundtrip_in_safetensors(tmp_path):
    from transformers import AutoModelForCausalLM

    model = build_model("tiny-0.1M", vocab_size=64, seed=0)
    out = save_pretrained(model, tmp_path / "m")
    assert (out / "model.safetensors").exists()
    loaded = AutoModelForCausalLM.from_pretrained(out)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_flops_per_token_is_kaplan():
    assert forward_flops_per_token(1000, 2, 8, 16, 50) == 2 * 1000 + 2 * 2 * 16 * 8 + 2 * 8 * 50
