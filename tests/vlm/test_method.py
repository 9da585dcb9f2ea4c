"""GenRecal's Recalibrator: shapes and masks for mismatched lengths and widths, and the shift, checked by an
identity construction that must reproduce the teacher's own answer logits exactly."""
from __future__ import annotations

import pytest
import torch

from suite.methods.chunked import IGNORE_INDEX
from suite.vlm.method import Recalibrator, RecalibratorConfig, answer_predictors, genrecal_loss
from suite.models import build_model

Q_LENS, A_LENS = (5, 3, 7), (2, 4, 1)


def _rows(vocab, q_lens, a_lens, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = [torch.randint(4, vocab, (n,), generator=g) for n in q_lens]
    a = [torch.randint(4, vocab, (n,), generator=g) for n in a_lens]
    L = max(x + y for x, y in zip(q_lens, a_lens))
    ids = torch.full((len(q), L), 2)
    att = torch.zeros(len(q), L, dtype=torch.long)
    for b, (x, y) in enumerate(zip(q, a)):
        ids[b, :len(x) + len(y)] = torch.cat([x, y])
        att[b, :len(x) + len(y)] = 1
    return q, a, ids, att


def _split(hidden, q_lens, a_lens, left_pad_questions=False):
    """Question features padded to max Lq (left or right), answer features right-padded to max La, masks."""
    B, H = hidden.shape[0], hidden.shape[-1]
    Lq, La = max(q_lens), max(a_lens)
    zq, qm = hidden.new_zeros(B, Lq, H), torch.zeros(B, Lq, dtype=torch.long)
    za, am = hidden.new_zeros(B, La, H), torch.zeros(B, La, dtype=torch.long)
    for b, (lq, la) in enumerate(zip(q_lens, a_lens)):
        sl = slice(Lq - lq, Lq) if left_pad_questions else slice(0, lq)
        zq[b, sl], qm[b, sl] = hidden[b, :lq], 1
        za[b, :la], am[b, :la] = hidden[b, lq:lq + la], 1
    return zq, qm, za, am


def _identity(rec: Recalibrator):
    with torch.no_grad():
        for layer in rec.body.layers:  # blocks whose residual branches add nothing
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        rec.proj_pre.weight.copy_(torch.eye(rec.d_student, rec.d_teacher))
        rec.proj_post.weight.copy_(torch.eye(rec.d_teacher, rec.d_student))
    return rec


@pytest.fixture(scope="module")
def teacher():
    return build_model("tiny-0.1M", vocab_size=60, seed=0).eval()


@pytest.mark.parametrize("left_pad", [False, True])
def test_identity_recalibrator_reproduces_the_teachers_answer_logits(teacher, left_pad):
    cfg = teacher.config
    rec = _identity(Recalibrator(cfg, d_teacher=cfg.hidden_size, cfg=RecalibratorConfig(output_norm="none")))
    q, a, ids, att = _rows(60, Q_LENS, A_LENS)
    with torch.no_grad():
        hidden = teacher.model(input_ids=ids, attention_mask=att).last_hidden_state
        logits = teacher(input_ids=ids, attention_mask=att).logits
    zq, qm, za, am = _split(hidden, Q_LENS, A_LENS, left_pad)
    r = rec(zq, qm, za, am, project_question=True)  # the regularization path: teacher question + answer
    z_t = answer_predictors(hidden, torch.tensor(Q_LENS), torch.tensor(A_LENS), max(A_LENS))
    assert r.shape == (3, max(A_LENS), cfg.hidden_size)
    assert torch.equal(r, z_t)
    W = teacher.get_output_embeddings().weight
    for b, (lq, la) in enumerate(zip(Q_LENS, A_LENS)):
        # the feature at answer slot j gives the teacher's own logits for answer token j (position lq-1+j)
        torch.testing.assert_close(r[b, :la] @ W.t(), logits[b, lq - 1:lq - 1 + la], atol=1e-5, rtol=1e-5)
        assert (r[b, la:] == 0).all()
    labels = torch.full((3, max(A_LENS)), IGNORE_INDEX)
    for b, x in enumerate(a):
        labels[b, :len(x)] = x
    loss, parts = genrecal_loss(r, z_t, W, labels)
    assert parts["kl"] == pytest.approx(0.0, abs=1e-5)
    expected = sum(torch.nn.functional.cross_entropy(logits[b, lq - 1:lq - 1 + la], a[b], reduction="sum")
                   for b, (lq, la) in enumerate(zip(Q_LENS, A_LENS)))
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_mismatched_widths_lengths_and_gradients(teacher):
    student = build_model("tiny-0.03M", vocab_size=40, seed=1)  # another width (32 vs 64) and vocabulary
    rec = Recalibrator(student.config, d_teacher=teacher.config.hidden_size)
    assert rec.d_student == 32 and len(rec.body.layers) == 2
    n_params = sum(p.numel() for p in rec.parameters())
    layer = sum(p.numel() for p in student.model.layers[0].parameters())
    assert n_params == 2 * layer + 2 * 64 * 32 + 2 * 64  # two student blocks, Proj-pre/post, the LayerNorm
    _, _, s_ids, s_att = _rows(40, (6, 2, 4), (1, 1, 1), seed=3)
    hs = student.model(input_ids=s_ids, attention_mask=s_att).last_hidden_state
    _, a, t_ids, t_att = _rows(60, Q_LENS, A_LENS, seed=4)
    with torch.no_grad():
        ht = teacher.model(input_ids=t_ids, attention_mask=t_att).last_hidden_state
    zq, qm, _, _ = _split(hs, (6, 2, 4), (1, 1, 1))
    _, _, za, am = _split(ht, Q_LENS, A_LENS)
    r = rec(zq, qm, za, am)
    assert r.shape == (3, max(A_LENS), 64)
    labels = torch.full((3, max(A_LENS)), IGNORE_INDEX)
    for b, x in enumerate(a):
        labels[b, :len(x)] = x
    z_t = answer_predictors(ht, torch.tensor(Q_LENS), torch.tensor(A_LENS), max(A_LENS))
    loss, parts = genrecal_loss(r, z_t, teacher.get_output_embeddings().weight, labels)
    loss.backward()
    assert parts["kl"] > 0 and parts["ce"] > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in rec.parameters())
    assert student.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0  # reaches the student question
    assert teacher.get_output_embeddings().weight.grad is None


def test_positions_and_config_errors(teacher):
    with pytest.raises(ValueError, match="depth"):
        RecalibratorConfig(depth=0)
    rec = Recalibrator(teacher.config, 64, RecalibratorConfig(new_positions=False))
    x, m = torch.zeros(1, 2, 64), torch.ones(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="q_positions"):
        rec(x, m, x, m)
    pos = torch.tensor([[0, 1]])
    assert rec(x, m, x, m, q_positions=pos, a_positions=pos + 2).shape == (1, 2, 64)


# ----------------------------------------------------------------------------- stages on tiny VLMs


def _pair(student_name):
    """A LLaVA teacher and a `student_name` student with different tokenizers, vocabularies and widths."""
    from PIL import Image, ImageDraw

    from suite.data.tokenizers import train_bpe
    from suite.models.vlm import build_vlm

    texts = [f"How many {s} are there? There are {n} {s}." for s in ("circles", "squares") for n in range(9)]
    teacher = build_vlm("tiny-llava-m", tokenizer=train_bpe(texts * 10, vocab_size=330), seed=0)
    student = build_vlm(student_name, tokenizer=train_bpe(texts * 10, vocab_size=290), seed=1)
    teacher.model.requires_grad_(False)
    images = []
    for i in range(3):
        im = Image.new("RGB", (48, 48), "white")
        ImageDraw.Draw(im).rectangle((4 + 4 * i, 4, 30, 30), fill=("red", "blue", "green")[i])
        images.append(im)
    batch = [([images[0]], "How many circles are there?", "There are 3 circles."),
             ([images[1]], "Colour?", "blue"),
             ([images[2]], "What is in the picture? Answer briefly.", "a green square")]
    return teacher, student, batch


@pytest.fixture(scope="module")
def pair():
    """A LLaVA teacher and a Qwen2-VL student."""
    return _pair("tiny-qwen2vl")


@pytest.fixture(scope="module")
def internvl_pair():
    """A LLaVA teacher and an InternVL student (ViT + pixel shuffle + MLP projector + Qwen2)."""
    return _pair("tiny-internvl")


@pytest.mark.parametrize("which", ["pair", "internvl_pair"])
def test_the_position_ablation_runs_with_each_models_own_ids(request, which):
    """Tab. 6c: new_positions off feeds the student's ids for its question and the teacher's for its answer."""
    from suite.vlm.method import GenRecalParams, stage_loss

    teacher, student, batch = request.getfixturevalue(which)
    d_t = teacher.model.config.text_config.hidden_size
    torch.manual_seed(0)
    fresh = Recalibrator(student.model.config, d_teacher=d_t)
    own = Recalibrator(student.model.config, d_teacher=d_t, cfg=RecalibratorConfig(new_positions=False))
    own.load_state_dict(fresh.state_dict())
    with torch.no_grad():
        l_new, _ = stage_loss(GenRecalParams(stage=1), student, batch, teacher=teacher, recalibrator=fresh)
        l_own, parts = stage_loss(GenRecalParams(stage=1), student, batch, teacher=teacher, recalibrator=own)
        s = student.encode_qa(batch, None)
        with student.positions() as box:
            student.hidden(s.inputs)
    assert torch.isfinite(l_own) and set(parts) == {"main_ce", "main_kl", "reg_ce", "reg_kl"}
    assert abs(float(l_own) - float(l_new)) > 1e-6  # the ids reach the Recalibrator's RoPE
    ids = box["ids"]
    assert ids.shape == s.inputs["input_ids"].shape
    if which == "pair":  # Qwen2-VL's M-RoPE: the image's tokens share temporal ids, so ids run short of L
        assert int(ids[0].max()) < ids.shape[1] - 1
    else:                # InternVL counts 0..L-1
        assert torch.equal(ids[0], torch.arange(ids.shape[1]))


def test_stage_2_freezes_a_tied_students_shared_head(pair):
    from suite.vlm.method import GenRecalParams, set_trainable

    _, student, _ = pair
    emb = student.model.get_input_embeddings()
    head = student.model.get_output_embeddings()
    untied = head.weight
    try:
        head.weight = emb.weight  # tie them, as Qwen2-VL-2B is
        set_trainable(student, None, GenRecalParams(stage=2))
        assert not emb.weight.requires_grad  # the head it shares stays frozen (train_head: false)
        assert any(p.requires_grad for p in student.language_model.parameters())
        set_trainable(student, None, GenRecalParams(stage=2, train_head=True))
        assert emb.weight.requires_grad
    finally:
        head.weight = untied
        student.model.requires_grad_(False)


@pytest.mark.parametrize("stage", [1, 2, 3])
@pytest.mark.parametrize("which", ["pair", "internvl_pair"])
def test_a_step_changes_exactly_what_the_stage_trains(request, which, stage):
    from suite.vlm.method import GenRecalParams, set_trainable, stage_loss

    teacher, student, batch = request.getfixturevalue(which)
    params = GenRecalParams(stage=stage)
    rec = Recalibrator(student.model.config, d_teacher=teacher.model.config.text_config.hidden_size)
    trained = set_trainable(student, rec, params)
    named = {**{f"student.{n}": p for n, p in student.model.named_parameters()},
             **{f"teacher.{n}": p for n, p in teacher.model.named_parameters()},
             **{f"rec.{n}": p for n, p in rec.named_parameters()}}
    before = {n: p.detach().clone() for n, p in named.items()}
    loss, parts = stage_loss(params, student, batch, teacher=teacher, recalibrator=rec)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    torch.optim.AdamW(trained, lr=1e-2, weight_decay=0.0).step()
    changed = {n for n, p in named.items() if not torch.equal(p, before[n])}
    # what Tab. 9 says each stage trains, from the names alone (not from set_trainable's own list)
    vision = (".visual.", ".vision_tower.", "patch_embed")
    head = ("lm_head",)  # the tiny students are untied: their input embeddings are LM body
    projector = ("merger", "multi_modal_projector")

    def intended(n: str) -> bool:
        if n.startswith("teacher."):
            return False
        if n.startswith("rec."):
            return stage in (1, 2)
        if stage == 1 or any(v in n for v in vision) and not any(p in n for p in projector):
            return False
        if stage == 3:
            return True
        return ".language_model." in n and not any(h in n for h in head)  # stage 2, default switches

    assert changed == {n for n in named if intended(n)}
    assert not any(n.startswith("teacher.") for n in changed)
    assert not any(".visual.blocks" in n or "patch_embed" in n or ".vision_tower." in n
                   for n in changed)  # vision encoder frozen
    student_changed = {n for n in changed if n.startswith("student.")}
    rec_changed = {n for n in changed if n.startswith("rec.")}
    if stage == 1:
        assert set(parts) == {"main_ce", "main_kl", "reg_ce", "reg_kl"}
        assert not student_changed and len(rec_changed) == len(list(rec.parameters()))
    elif stage == 2:
        assert "student_ce" in parts and "reg_ce" in parts
        assert rec_changed and student_changed
        assert all(".language_model." in n for n in student_changed)
    else:
        assert set(parts) == {"student_ce"} and not rec_changed
        assert any("lm_head" in n for n in student_changed)
        assert any("merger" in n or "multi_modal_projector" in n for n in student_changed)  # the projector
    for p in list(student.model.parameters()) + list(rec.parameters()):
        p.grad = None


def test_sft_and_same_tokenizer_kd_baselines(pair):
    from suite.data.tokenizers import train_bpe
    from suite.vlm.method import baseline_loss
    from suite.models.vlm import build_vlm

    _, student, batch = pair
    base = train_bpe([q + " " + a for _, q, a in batch] * 20, vocab_size=300)
    s, t = build_vlm("tiny-llava", tokenizer=base, seed=0), build_vlm("tiny-llava-m", tokenizer=base, seed=1)
    sft, parts = baseline_loss("sft", s, batch)
    assert sft > 0 and set(parts) == {"ce"}
    for div in ("forward_kl", "reverse_kl", "skew_kl"):
        same, p = baseline_loss("kd", s, batch, teacher=s, divergence=div)
        assert p["kd"] == pytest.approx(0.0, abs=1e-5)  # a teacher identical to the student: no divergence
        other, p = baseline_loss("kd", s, batch, teacher=t, divergence=div)
        assert p["kd"] > 1e-3
        other.backward()
        assert s.language_model.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0
        s.model.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="share a tokenizer"):
        baseline_loss("kd", student, batch, teacher=t)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_train_vision_opens_the_encoder_in_stages_2_and_3_only(pair, stage):
    from suite.vlm.method import GenRecalParams, set_trainable

    teacher, student, _ = pair
    rec = Recalibrator(student.model.config, d_teacher=teacher.model.config.text_config.hidden_size)
    ids = {id(p) for p in set_trainable(student, rec, GenRecalParams(stage=stage), train_vision=True)}
    # the encoder proper: Qwen2-VL keeps its projector (merger) inside `visual`; train_projector covers it
    tower = [p for n, p in student.vision_tower.named_parameters() if not n.startswith("merger")]
    assert all((id(p) in ids) == (stage > 1) for p in tower)
    assert all(p.requires_grad == (stage > 1) for p in tower)
    set_trainable(student, rec, GenRecalParams(stage=stage))  # the default keeps it frozen again
    assert not any(p.requires_grad for p in tower)


def test_ablation_switches_main_ce_and_stage3_kinds(pair):
    from suite.vlm.method import GenRecalParams, stage_loss

    teacher, student, batch = pair
    rec = Recalibrator(student.model.config, d_teacher=teacher.model.config.text_config.hidden_size)
    with torch.no_grad():
        _, parts = stage_loss(GenRecalParams(stage=1, main_ce=False), student, batch, teacher=teacher, recalibrator=rec)
        full, full_parts = stage_loss(GenRecalParams(stage=1), student, batch, teacher=teacher, recalibrator=rec)
    assert set(parts) == {"main_kl", "reg_ce", "reg_kl"} and "main_ce" in full_parts  # Tab. 5/12: KL only
    assert GenRecalParams(stage3_kinds=["ai2d"]).stage3_kinds == ("ai2d",)
    with pytest.raises(ValueError, match="valid kinds are ai2d, mathvista"):
        GenRecalParams(stage3_kinds=["vqa"])
