"""A VLM cell's FLOPs (VLMStage.flops) against a hand computation from the models' shapes and sequence lengths.

Teacher tiny-llava-m (LLaVA: 16 image tokens, a CLIP tower over 16 patches + CLS), student tiny-qwen2vl
(Qwen2-VL: 4 image tokens after the 2×2 merge, a ViT over 16 patches), each with its own BPE: the teacher's
sequences are its own, longer by its 12 extra image tokens and different in its text tokens. No training:
the stage is built and asked for the FLOPs of its 2 steps (4 items, batch 2); about 5 s on 2 CPU cores.
"""
from __future__ import annotations

import pytest
import torch

from suite.config import config_from_dict
from suite.models.vlm import TINY_VLMS

STUDENT, TEACHER = "tiny-qwen2vl", "tiny-llava-m"
IMAGE_TOKENS = {STUDENT: 4, TEACHER: 16}    # (56/14)² patches merged 2×2; (32/8)² patches, CLS dropped
VISION_TOKENS = {STUDENT: 16, TEACHER: 17}  # what the tower runs over: 4×4 patches; 4×4 patches + CLS


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    from suite.data.tokenizers import train_bpe
    from suite.vlm.items import instruction_items
    from suite.models.vlm import build_vlm

    texts = [f"{q.question} {q.answer}" for q in instruction_items(12, seed=5)]
    out = tmp_path_factory.mktemp("teacher") / "model"
    build_vlm(TEACHER, tokenizer=train_bpe(texts, vocab_size=330), seed=0).save(out)
    return out


def _stage(tmp_path, teacher_dir, **genrecal):
    from suite.vlm import open_vlm_stage
    from suite.methods import make_method

    cfg = config_from_dict({"student": STUDENT, "teacher": str(teacher_dir),
                            "method": {"name": "genrecal", **genrecal}, "data": {"tokenizer_vocab_size": 290},
                            "vlm": {"train_items": 4, "heldout_items": 2}, "train": {"batch_size": 2}})
    return open_vlm_stage(cfg, make_method("genrecal", dict(cfg.method.params)), tmp_path, torch.device("cpu"), None)


def _trained(stage):
    """The stage's items in training order, and D_S as the loop counts it (every step's student tokens)."""
    rows = [i for step in range(stage.steps) for i in stage.plan.rows(step)]
    return [stage.train_items[i] for i in rows], sum(stage.step_tokens(step) for step in range(stage.steps))


def _lengths(vlm, name, item):
    """(question, answer) tokens by hand: the chat text through the tokenizer, its one image placeholder
    expanded to the family's image tokens; the answer's tokens + EOS."""
    q = len(vlm.tokenizer(vlm.chat_text(1, item.question))["input_ids"]) - 1 + IMAGE_TOKENS[name]
    return q, len(vlm.tokenizer(item.answer, add_special_tokens=False)["input_ids"]) + 1


@pytest.mark.parametrize("stage_no, reg_in_stage2", [(1, True), (2, False)])
def test_flops_match_a_hand_computation(tmp_path, teacher_dir, stage_no, reg_in_stage2):
    stage = _stage(tmp_path, teacher_dir, stage=stage_no, reg_in_stage2=reg_in_stage2)
    assert stage.steps == 2
    items, D = _trained(stage)
    s_cfg, t_cfg = TINY_VLMS.get(STUDENT), TINY_VLMS.get(TEACHER)
    V_s, V_t = stage.student.head_weight.shape[0], stage.teacher.head_weight.shape[0]
    N_S, N_T, N_R = stage.n_params, stage.n_teacher, stage.n_recalibrator
    N_Sv, N_Tv = stage.n_vision, stage.n_teacher_vision
    d_s, d_t = s_cfg.hidden, t_cfg.hidden  # 64, 128
    student = teacher = recal = 0.0
    n_s = n_t = 0
    for it in items:
        qs, as_ = _lengths(stage.student, STUDENT, it)
        qt, at = _lengths(stage.teacher, TEACHER, it)
        Ls, Lt = qs + as_, qt + at
        n_s, n_t = n_s + Ls, n_t + Lt
        # the student's language model: 2N + 2·n_layer·n_ctx·d per token, n_ctx = the sequence's own length;
        # stage 1: forward only, no head; stage 2: ×3, its head at its answer tokens
        lm = Ls * (2 * N_S + 2 * s_cfg.layers * Ls * d_s)
        if stage_no == 1:
            student += lm
        else:
            student += 3 * (lm + 2 * d_s * V_s * as_)
        # its vision tower (frozen: ×1), 16 patches, width 32, 1 block
        P = VISION_TOKENS[STUDENT]
        student += P * (2 * N_Sv + 2 * s_cfg.vision_layers * P * s_cfg.vision_hidden)
        # the teacher over its own sequence, its head at its answer tokens, its CLIP tower: 17 tokens, width 64
        P = VISION_TOKENS[TEACHER]
        teacher += (Lt * (2 * N_T + 2 * t_cfg.layers * Lt * d_t) + 2 * d_t * V_t * at
                    + P * (2 * N_Tv + 2 * t_cfg.vision_layers * P * t_cfg.vision_hidden))
        # the Recalibrator (2 student-width blocks), ×3: [student question ; teacher answer], read through the
        # teacher's head; the regularization path [teacher question ; teacher answer] in stage 1 only here
        Lm, Lr = qs + at, qt + at
        recal += 3 * (Lm * (2 * N_R + 2 * 2 * Lm * d_s) + 2 * d_t * V_t * at)
        if stage_no == 1:
            recal += 3 * (Lr * (2 * N_R + 2 * 2 * Lr * d_s) + 2 * d_t * V_t * at)
    assert D == n_s
    f = stage.flops(D)
    assert f["student_tokens"] == n_s and f["teacher_tokens"] == n_t
    assert f["student_train"] == pytest.approx(student, rel=1e-12)
    assert f["teacher_logits"] == pytest.approx(teacher, rel=1e-12)
    assert f["recalibrator_train"] == pytest.approx(recal, rel=1e-12)
    assert f["total"] == pytest.approx(student + teacher + recal, rel=1e-12)
    assert stage.flops(0)["total"] == 0.0  # epochs 0: nothing trained


def test_the_teacher_is_counted_over_its_own_image_tokens(tmp_path, teacher_dir):
    """The teacher's question holds its 16 image tokens, the student's 4: the teacher's token count is its own
    sequences', not the student's (the old count used the student's tokens for both)."""
    stage = _stage(tmp_path, teacher_dir, stage=1)
    items, D = _trained(stage)
    f = stage.flops(D)
    n_t = sum(sum(_lengths(stage.teacher, TEACHER, it)) for it in items)
    n_s = sum(sum(_lengths(stage.student, STUDENT, it)) for it in items)
    assert f["teacher_tokens"] == n_t and f["student_tokens"] == n_s == D and n_t != n_s
    rows = [i for step in range(stage.steps) for i in stage.plan.rows(step)]
    for i in rows:  # each question: its chat text's tokens with the one placeholder grown to 16 image tokens
        it, vlm = stage.train_items[i], stage.teacher
        text = len(vlm.tokenizer(vlm.chat_text(1, it.question))["input_ids"]) - 1
        assert stage._seq("teacher", i)[0] == text + 16
        assert stage._seq("student", i)[0] == len(stage.student.tokenizer(
            stage.student.chat_text(1, it.question))["input_ids"]) - 1 + 4
