"""The `suite` command: help that teaches, train end to end, errors that name the file and key."""
import json
import subprocess
import sys

import yaml

from suite.cli import main


def test_help_lists_commands_and_examples():
    out = subprocess.run([sys.executable, "-m", "suite", "--help"], capture_output=True, text=True, check=True).stdout
    for word in ["train", "demo", "bench", "examples:", "suite train configs/quickstart.yaml"]:
        assert word in out


def test_train_writes_result_and_prints_summary(tmp_path, capsys):
    cfg = {"name": "cli", "student": "tiny-0.1M", "data": {"language": "synthetic-small", "seq_len": 16,
                                                           "heldout_examples": 4},
           "train": {"tokens": 256, "batch_size": 4}}
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert "held-out loss" in capsys.readouterr().out
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["D_S"] == 256 and result["method"] == "supervised"


def test_train_with_a_typo_exits_2_naming_file_and_key(tmp_path, capsys):
    path = tmp_path / "typo.yaml"
    path.write_text("student: tiny-0.1M\ntrain:\n  tokns: 5\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "typo.yaml" in err and "'tokns'" in err and "did you mean 'tokens'" in err


def test_set_overrides_apply(tmp_path, capsys):
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump({"student": "tiny-0.1M", "data": {"language": "synthetic-small", "seq_len": 16,
                                                                     "heldout_examples": 4}}))
    assert main(["train", str(path), "--out", str(tmp_path / "r"), "--no-progress",
                 "--set", "train.tokens=128", "--set", "train.batch_size=2"]) == 0
    assert json.loads((tmp_path / "r" / "result.json").read_text())["steps"] == 4
