"""Config schema: errors name the file, the key and the valid choices; budgets parse; ids are content hashes."""
import pytest

from suite.config import ConfigError, apply_overrides, config_from_dict, load_config, parse_tokens


def test_quickstart_configs_load():
    t = load_config("configs/quickstart.yaml")
    s = load_config("configs/quickstart-student.yaml")
    assert t.method.name == "supervised" and s.method.name == "kd" and s.teacher


@pytest.mark.parametrize("data,msgs", [
    ({"trian": {}}, ["grid.yaml", "'trian'", "did you mean 'train'", "valid: continual, data, eval, method"]),
    ({"train": {"tokns": 5}}, ["grid.yaml: train", "did you mean 'tokens'", "batch_size"]),
    ({"train": {"batch_size": "many"}}, ["train.batch_size", "expected int"]),
    ({"method": "kdd"}, ["unknown method 'kdd'", "did you mean 'kd'", "supervised"]),
    ({"method": "kd"}, ["needs a teacher"]),
    ({"optim": {"lr": "fast"}}, ["optim.lr", "expected float"]),
])
def test_bad_configs_name_file_key_and_choices(data, msgs):
    with pytest.raises(ConfigError) as e:
        config_from_dict(data, "grid.yaml")
    for m in msgs:
        assert m in str(e.value)


def test_load_config_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("value,n,expected", [
    (2_000_000, None, 2_000_000), ("2M", None, 2_000_000), ("500k", None, 500_000), ("1.5e6", None, 1_500_000),
    ("20xN", 1000, 20_000), ("0.5xN", 1000, 500), ("1B", None, 10**9),
])
def test_parse_tokens(value, n, expected):
    assert parse_tokens(value, n) == expected


@pytest.mark.parametrize("bad", ["lots", "-5", 0, "20xM", True])
def test_parse_tokens_rejects(bad):
    with pytest.raises(ConfigError):
        parse_tokens(bad, 100)


def test_cell_id_ignores_name_but_not_content():
    a = config_from_dict({"name": "a"})
    b = config_from_dict({"name": "b"})
    c = config_from_dict({"name": "a", "train": {"seed": 1}})
    assert a.cell_id == b.cell_id != c.cell_id
    assert len(a.cell_id) == 12


def test_overrides_reach_nested_keys_and_method_params():
    d = apply_overrides({"method": "kd", "teacher": "t"},
                        ["method.temperature=2", "train.tokens=1M", "student=tiny-2M"])
    cfg = config_from_dict(d)
    assert cfg.method.params == {"temperature": 2} and cfg.train.tokens == "1M" and cfg.student == "tiny-2M"
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["train.tokens"])
