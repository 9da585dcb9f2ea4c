"""Grid expansion: axes, zip, overrides, include, teacher references, names, ids, and clear errors."""
import pytest
import yaml

from suite.config import ConfigError
from suite.sweep import expand, load_grid
from suite.sweep.grid import TEACHER_REF

BASE = {"name": "g", "defaults": {"data": {"language": "synthetic-small", "seq_len": 16}},
        "cells": {"teacher": {"set": {"student": "tiny-0.5M", "train": {"tokens": "50k"}}},
                  "students": {"axes": {"student": ["tiny-0.1M", "qwen2-0.1M"], "method": ["supervised", "kd"],
                                        "train.tokens": ["10k", "20k"]},
                               "set": {"teacher": "@teacher"},
                               "overrides": {"student": {"qwen2-0.1M": {"optim": {"lr": 1e-3}}}}}}}


def test_product_expansion_names_ids_and_teacher_first():
    g = expand(BASE, "g.yaml")
    assert len(g.cells) == 1 + 2 * 2 * 2
    assert g.cells[0].group == "teacher"
    teacher = g.cells[0]
    kd = [c for c in g.cells if c.config.method.name == "kd"]
    sup = [c for c in g.cells if c.group == "students" and c.config.method.name == "supervised"]
    assert all(c.teacher_id == teacher.id and c.config.teacher == TEACHER_REF + teacher.id for c in kd)
    assert all(c.teacher_id is None and c.config.teacher is None for c in sup)  # no false dependency
    assert {c.name for c in kd} >= {"kd-T0.5M-S0.1M-D10k-s0", "kd-T0.5M-Sq0.1M-D20k-s0"}
    assert len({c.id for c in g.cells}) == len(g.cells)
    assert {c.config.optim.lr for c in g.cells if c.config.student == "qwen2-0.1M"} == {1e-3}
    assert expand(BASE, "g.yaml").cells == g.cells  # deterministic


def test_zip_mode_and_identical_cells_deduplicated():
    raw = {"cells": {"a": {"mode": "zip", "axes": {"student": ["tiny-0.1M", "tiny-0.5M"],
                                                    "train.tokens": ["1k", "2k"]}},
                     "b": {"set": {"student": "tiny-0.1M", "train": {"tokens": "1k"}}}}}
    g = expand(raw, "z.yaml")
    assert len(g.cells) == 2  # b repeats a's first cell


def test_include_merges_underneath(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"defaults": {"train": {"batch_size": 4}},
                                                        "resources": {"timeout_min": 7}}))
    (tmp_path / "g.yaml").write_text(yaml.safe_dump({"name": "inc", "include": "base.yaml",
                                                     "cells": {"a": {"set": {"student": "tiny-0.1M"}}}}))
    g = load_grid(tmp_path / "g.yaml")
    assert g.cells[0].config.train.batch_size == 4 and g.cells[0].resources.timeout_min == 7


@pytest.mark.parametrize("raw,msgs", [
    ({"cells": {}}, ["g.yaml", "no cells"]),
    ({"cells": {"a": {"axes": {"studnet": ["tiny-0.1M"]}}}}, ["cells.a.axes", "'studnet'", "did you mean 'student'"]),
    ({"cells": {"a": {"axes": {"method": ["supervised", "distil"]}}}},
     ["unknown method 'distil'", "valid: ", "kd, ", "supervised"]),
    ({"cells": {"a": {"set": {"method": "kd", "teacher": "@techer"}}, "teacher": {}}},
     ["'@techer'", "did you mean 'teacher'"]),
    ({"cells": {"a": {"set": {"method": "kd", "teacher": "@b"}}, "b": {"set": {"method": "kd", "teacher": "@a"}}}},
     ["cycle", "a -> b -> a"]),
    ({"cells": {"a": {"axes": {"train.batch_size": ["x"]}}}}, ["train.batch_size", "expected int"]),
    ({"cells": {"a": {"axes": {"student": "tiny-0.1M"}}}}, ["expected a non-empty list"]),
    ({"cells": {"a": {"mode": "grid"}}}, ["unknown mode 'grid'", "product, zip"]),
    ({"cells": {"a": {"sett": {}}}}, ["unknown key 'sett'", "did you mean 'set'"]),
    ({"cells": {"a": {"resources": {"gpus": 1}}}}, ["resources", "'gpus'", "gpus_per_node"]),
    ({"cells": {"t": {"axes": {"seed": [1]}, "set": {}}}}, ["unknown axis 'seed'"]),
    ({"cels": {}}, ["unknown key 'cels'", "did you mean 'cells'"]),
])
def test_bad_grids_name_file_key_and_choices(raw, msgs):
    with pytest.raises(ConfigError) as e:
        expand(raw, "g.yaml") if "cels" not in raw else _load(raw)
    for m in msgs:
        assert m in str(e.value), (m, str(e.value))


def _load(raw, tmp=None):
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    (d / "g.yaml").write_text(yaml.safe_dump(raw))
    return load_grid(d / "g.yaml")


def test_teacher_group_must_be_one_cell():
    raw = {"cells": {"t": {"axes": {"student": ["tiny-0.1M", "tiny-0.5M"]}},
                     "s": {"set": {"method": "kd", "teacher": "@t"}}}}
    with pytest.raises(ConfigError, match="group of 2 cells"):
        expand(raw, "g.yaml")


def test_axes_on_keys_that_only_defaults_define_stay_per_cell():
    raw = {"defaults": {"train": {"batch_size": 4}},
           "cells": {"s": {"axes": {"train.tokens": [320, 640]}, "set": {"student": "tiny-0.1M"}}}}
    g = expand(raw, "g.yaml")
    assert [c.config.train.tokens for c in g.cells] == [320, 640]


def test_identical_entries_are_merged_with_a_note(tmp_path, capsys):
    """Two groups (or two axis values) that give the same cell run it once, and `submit` says so on stderr."""
    import yaml

    from suite.cli import main

    g = tmp_path / "m.yaml"
    g.write_text(yaml.safe_dump({"name": "m", "defaults": {"data": {"language": "synthetic-small", "seq_len": 16},
                                                           "train": {"tokens": 256, "batch_size": 4}},
                                 "cells": {"a": {"set": {"student": "tiny-0.007M"}},
                                           "b": {"set": {"student": "tiny-0.007M"}},
                                           "c": {"axes": {"train.seed": [0, 0, 1]}, "set": {"student": "tiny-0.1M"}}}}))
    assert main(["sweep", "submit", str(g), "--runs", str(tmp_path / "runs"), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 3
    assert "group 'b': 1 entry identical to an entry of group 'a'" in err
    assert "group 'c': 1 entry repeated within the group" in err
