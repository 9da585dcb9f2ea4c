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


def test_cell_id_hashes_method_parameters_in_canonical_form():
    """Defaults spelled out, ints for floats: the same cell. A parameter away from its default: another cell."""
    base = {"teacher": "runs/t/model"}
    ids = {config_from_dict({**base, "method": m}).cell_id for m in (
        "kd", {"name": "kd"}, {"name": "kd", "kd_weight": 1.0}, {"name": "kd", "kd_weight": 1, "temperature": 1},
        {"name": "kd", "divergence": "forward_kl", "params": {"t2_scale": True}})}
    assert len(ids) == 1
    other = config_from_dict({**base, "method": {"name": "kd", "temperature": 2}})
    assert other.cell_id not in ids
    assert other.cell_id == config_from_dict({**base, "method": {"name": "kd", "temperature": 2.0}}).cell_id


def test_every_committed_cell_keeps_its_id():
    """suite/legacy_ids.json maps the canonical ids of the cells of sweeps/ that spelled defaults out to the ids they
    ran under (scripts/legacy_ids.py); --check exits 1 naming any cell that would be renamed."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "scripts" / "legacy_ids.py"), "--check"], cwd=root,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_overrides_reach_nested_keys_and_method_params():
    d = apply_overrides({"method": "kd", "teacher": "t"},
                        ["method.temperature=2", "train.tokens=1M", "student=tiny-2M"])
    cfg = config_from_dict(d)
    assert cfg.method.params == {"temperature": 2} and cfg.train.tokens == "1M" and cfg.student == "tiny-2M"
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["train.tokens"])
