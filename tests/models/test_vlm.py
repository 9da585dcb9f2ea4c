"""Tiny VLMs of three families: build, batched generation equals one-at-a-time, save/load roundtrip."""
from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw

from suite.data.tokenizers import train_bpe
from suite.models.vlm import TINY_VLMS, build_vlm, is_vlm

FAMILIES = {"tiny-llava": "llava", "tiny-qwen2vl": "qwen2_vl", "tiny-internvl": "internvl"}


@pytest.fixture(scope="module")
def tok():
    texts = [f"How many {s} are there? The answer is {n}." for s in ("circles", "squares") for n in range(9)]
    return train_bpe(texts * 10, vocab_size=320)


def _images(n):
    out = []
    for i in range(n):
        im = Image.new("RGB", (40 + 8 * i, 40), "white")
        ImageDraw.Draw(im).ellipse((4, 4, 20 + 4 * i, 30), fill=("red", "blue", "green")[i % 3])
        out.append(im)
    return out


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_batched_generation_equals_single_and_roundtrips(name, tok, tmp_path):
    vlm = build_vlm(name, tokenizer=tok, seed=0)
    assert vlm.family == FAMILIES[name]
    assert len(tok) < len(vlm.tokenizer)  # the family's image tokens went into a copy, not the caller's tokenizer
    prompts = ["How many circles?", "What colour is the circle in this picture?", "Count.", "Is it red or blue?"]
    batch = [([im], p) for im, p in zip(_images(4), prompts)]
    batched = vlm.generate(batch, max_new_tokens=6)
    single = [vlm.generate([b], max_new_tokens=6)[0] for b in batch]
    assert batched == single
    enc = vlm.inputs(batch)
    assert (enc["attention_mask"][:, -1] == 1).all()  # left padding: every row ends on a real token
    assert (enc["attention_mask"][:, 0] == 0).any()

    path = vlm.save(tmp_path / name)
    assert (path / "model.safetensors").exists() and is_vlm(str(path))
    again = build_vlm(str(path))
    assert again.generate(batch, max_new_tokens=6) == batched
    for a, b in zip(vlm.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    assert again.fingerprint() == vlm.fingerprint() and again.family == vlm.family
    enc_again = again.inputs(batch)
    assert all(torch.equal(enc[k], enc_again[k]) for k in enc)  # the reloaded processor encodes the same
    with torch.no_grad():
        assert torch.equal(vlm.model(**enc).logits, again.model(**enc_again).logits)


def test_unknown_and_missing():
    with pytest.raises(ValueError, match="needs a tokenizer"):
        build_vlm("tiny-llava")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_vlm("/nonexistent/vlm")
    assert not is_vlm("tiny-1M") and all(is_vlm(n) for n in TINY_VLMS.names())


def test_hub_ids_are_recognised_by_their_config(monkeypatch):
    # regression: only local configs were read, so `suite eval --model Qwen/Qwen2-VL-2B-Instruct` loaded the
    # VLM as a text-only causal LM
    import transformers

    seen = []

    def from_pretrained(spec, **kw):
        seen.append(spec)
        if spec == "org/a-vlm":
            return transformers.PretrainedConfig(vision_config={"hidden_size": 8})
        if spec == "org/a-text-lm":
            return transformers.PretrainedConfig()
        raise OSError(f"{spec} is not cached and the hub is offline")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", from_pretrained)
    assert is_vlm("org/a-vlm") and not is_vlm("org/a-text-lm") and not is_vlm("org/missing")
    assert not is_vlm("tiny-1M") and not is_vlm("runs/x/model") and not is_vlm("./nope")
    assert seen == ["org/a-vlm", "org/a-text-lm", "org/missing"]  # tiny names and paths never reach the hub


def test_generation_stops_at_the_checkpoints_end_tokens(tok):
    # regression: eos_token_id=tokenizer.eos replaced the generation_config's list (e.g. Llama-3's <|eot_id|>
    # besides <|end_of_text|>), so such replies ran on to max_new_tokens
    vlm = build_vlm("tiny-llava", tokenizer=tok, seed=0)
    batch = [(_images(1), "How many circles?")]
    free = vlm.generate(batch, max_new_tokens=6)[0]
    enc = vlm.inputs(batch)
    ids = vlm.model.generate(**enc, max_new_tokens=6, do_sample=False)[0, enc["input_ids"].shape[1]:].tolist()
    assert len(ids) == 6 and free == vlm.tokenizer.decode(ids, skip_special_tokens=True).strip()
    vlm.model.generation_config.eos_token_id = [ids[0], vlm.tokenizer.eos_token_id]  # a second end token
    stopped = vlm.generate(batch, max_new_tokens=6)[0]
    assert stopped == vlm.tokenizer.decode(ids[:1], skip_special_tokens=True).strip() != free


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_question_answer_split_gives_the_models_own_answer_logits(name, tok):
    from suite.vlm.method import answer_predictors

    vlm = build_vlm(name, tokenizer=tok, seed=1)
    batch = [([im], q, a) for im, q, a in zip(_images(3), ["How many circles?", "Colour?", "What is it?"],
                                             ["There are 3 circles", "red", "a circle and a square"])]
    qa = vlm.encode_qa(batch)
    answers = [tok(a, add_special_tokens=False)["input_ids"] + [vlm.tokenizer.eos_token_id] for *_, a in batch]
    assert qa.a_len.tolist() == [len(a) for a in answers]
    for b, a in enumerate(answers):  # answer ids right after the question, then padding
        lq = int(qa.q_len[b])
        assert qa.inputs["input_ids"][b, lq:lq + len(a)].tolist() == a
        assert qa.labels[b, :len(a)].tolist() == a and (qa.labels[b, len(a):] == -100).all()
        assert int(qa.inputs["attention_mask"][b].sum()) == lq + len(a)
    with torch.no_grad():
        logits = vlm.model(**qa.inputs).logits
        z = answer_predictors(vlm.hidden(qa.inputs), qa.q_len, qa.a_len, qa.labels.shape[1])
    for b in range(3):  # hidden states + head == the model's logits at the shifted answer positions
        lq, la = int(qa.q_len[b]), int(qa.a_len[b])
        torch.testing.assert_close(z[b, :la] @ vlm.head_weight.t(), logits[b, lq - 1:lq - 1 + la],
                                   atol=1e-5, rtol=1e-5)
    assert vlm.vision_tower is not None and vlm.language_model is not None
    with torch.no_grad():
        pre, post = vlm.hidden_pair(qa.inputs)
        assert torch.equal(post, vlm.hidden(qa.inputs))
        torch.testing.assert_close(vlm.language_model.norm(pre), post)
