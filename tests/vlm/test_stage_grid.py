"""GenRecal in a grid: `vlm.stages` expands one genrecal cell into chained stage cells, and bad sections fail
with the key they name (no training here: expansion only)."""
from __future__ import annotations

import copy

import pytest

from suite.config import ConfigError, config_from_dict
from suite.sweep.grid import expand


def _raw(stages=(1, 2, 3), regularization=("ce+kl", "none"), **vlm):
    return {
        "name": "gr",
        "defaults": {"vlm": {"train_items": 16, "heldout_items": 4}, "train": {"batch_size": 8}},
        "cells": {
            "teacher": {"set": {"student": "tiny-llava-m", "method": "supervised",
                                "data": {"tokenizer_vocab_size": 330}}},
            "gr": {"axes": {"method.regularization": list(regularization)},
                   "set": {"student": "tiny-qwen2vl", "teacher": "@teacher", "method": {"name": "genrecal"},
                           "data": {"tokenizer_vocab_size": 290}, "vlm": {"stages": list(stages), **vlm}}},
        },
    }


def _chains(grid):
    teacher = next(c for c in grid.cells if c.group == "teacher")
    chains = {}
    for c in grid.cells:
        if c.group == "gr":
            chains.setdefault(c.config.method.params["regularization"], []).append(c)
    return teacher, {k: sorted(v, key=lambda c: c.config.method.params["stage"]) for k, v in chains.items()}


def test_stages_expand_into_a_chain_per_axis_value():
    g = expand(_raw(), "g.yaml")
    assert len(g.cells) == 7 and len({c.id for c in g.cells}) == 7
    teacher, chains = _chains(g)
    assert g.cells[0].id == teacher.id and teacher.teacher_id is None and teacher.config.teacher is None
    assert set(chains) == {"ce+kl", "none"}
    order = [c.id for c in g.cells]
    for reg, (s1, s2, s3) in chains.items():
        assert [c.config.method.params["stage"] for c in (s1, s2, s3)] == [1, 2, 3]
        assert [c.teacher_id for c in (s1, s2, s3)] == [teacher.id, s1.id, s2.id]
        assert order.index(teacher.id) < order.index(s1.id) < order.index(s2.id) < order.index(s3.id)
        assert [c.config.vlm.init for c in (s1, s2, s3)] == [None, f"cell:{s1.id}", f"cell:{s2.id}"]
        assert [c.config.vlm.recalibrator for c in (s1, s2, s3)] == [None, f"cell:{s1.id}", None]
        assert {c.config.teacher for c in (s1, s2, s3)} == {f"cell:{teacher.id}"}
        assert {c.config.student for c in (s1, s2, s3)} == {"tiny-qwen2vl"}
        assert [c.name.split("-")[:3] for c in (s1, s2, s3)] == [["genrecal", f"k{k}", f"reg{reg}"]
                                                                   for k in (1, 2, 3)]
    assert not {c.id for c in chains["ce+kl"]} & {c.id for c in chains["none"]}


def test_a_stages_id_follows_everything_before_it():
    ids = {c.id for c in expand(_raw(), "g.yaml").cells}
    other = _raw()
    other["cells"]["teacher"]["set"]["vlm"] = {"train_items": 17}  # only the teacher changes
    _, chains = _chains(expand(other, "g.yaml"))
    assert not {c.id for chain in chains.values() for c in chain} & ids


def test_stages_can_skip_stage_1():
    g = expand(_raw(stages=(2, 3), regularization=("ce+kl",)), "g.yaml")
    teacher, chains = _chains(g)
    s2, s3 = chains["ce+kl"]
    assert [c.config.method.params["stage"] for c in (s2, s3)] == [2, 3]
    assert s2.config.vlm.init is None and s2.config.vlm.recalibrator is None and s2.teacher_id == teacher.id
    assert s3.config.vlm.init == f"cell:{s2.id}" and s3.config.vlm.recalibrator is None
    assert s3.teacher_id == s2.id and s3.config.teacher == f"cell:{teacher.id}"


@pytest.mark.parametrize("stages", [(3, 1), (4,), (1, 1), (0, 1), (2, 2, 3)])
def test_bad_stage_lists_name_vlm_stages(stages):
    with pytest.raises(ConfigError, match=r"cells\.gr: vlm\.stages: must be increasing"):
        expand(_raw(stages=stages), "g.yaml")


def test_a_typo_in_the_vlm_section_is_named():
    raw = _raw()
    raw["cells"]["gr"]["set"]["vlm"]["train_item"] = 10
    with pytest.raises(ConfigError, match=r"vlm: unknown key 'train_item' \(did you mean 'train_items'\?\)"):
        expand(raw, "g.yaml")


def test_stage_keys_belong_to_genrecal_cells():
    with pytest.raises(ConfigError, match=r"vlm\.stages: only a genrecal cell has stages"):
        config_from_dict({"student": "tiny-qwen2vl", "method": "supervised", "vlm": {"stages": [1, 2]}})
    with pytest.raises(ConfigError, match=r"vlm\.recalibrator: only a genrecal cell"):
        config_from_dict({"student": "tiny-qwen2vl", "method": "kd", "teacher": "x", "vlm": {"recalibrator": "y"}})
    with pytest.raises(ConfigError, match=r"method\.stage 3 is not in vlm\.stages \[1, 2\]"):
        config_from_dict({"student": "tiny-qwen2vl", "teacher": "t", "method": {"name": "genrecal", "stage": 3},
                          "vlm": {"stages": [1, 2]}})
    with pytest.raises(ConfigError, match="method 'gere' does not train vision-language students"):
        config_from_dict({"method": "gere", "continual": {"tasks": "syn-1"}, "vlm": {"epochs": 2}})
    with pytest.raises(ConfigError, match=r"vlm\.kinds: 'ai2dd' .*did you mean 'ai2d'"):
        config_from_dict({"student": "tiny-qwen2vl", "method": "supervised", "vlm": {"kinds": ["ai2dd"]}})


def test_an_explicit_stage_is_one_cell_and_a_kd_cell_keeps_its_teacher():
    raw = _raw(regularization=("ce+kl",))
    raw["cells"]["gr"]["set"]["method"] = {"name": "genrecal", "stage": 2}
    g = expand(raw, "g.yaml")
    assert [c.config.method.params["stage"] for c in g.cells if c.group == "gr"] == [2]
    kd = copy.deepcopy(_raw(regularization=("ce+kl",)))
    kd["cells"]["gr"] = {"set": {"student": "tiny-qwen2vl", "teacher": "@teacher", "method": "kd",
                                 "data": {"tokenizer_vocab_size": 290}}}
    teacher, cell = expand(kd, "g.yaml").cells
    assert cell.config.teacher == f"cell:{teacher.id}" and cell.teacher_id == teacher.id
    assert cell.name.startswith("kd-forward_kl-Ttiny-llava-m-Stiny-qwen2vl")
