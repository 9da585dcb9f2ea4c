"""`suite eval` and evaluation inside cells: MMLU + heldout on a corpus-trained tiny model, errors, cell ids."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.cli import main
from suite.config import ConfigError, EvalConfig, config_from_dict
from suite.eval.mmlu import write_mmlu_fixture
from suite.train import train

SUBJECTS = ["abstract_algebra", "anatomy", "marketing"]


def _cell(tmp_path, **eval_section):
    docs = tmp_path / "corpus.jsonl"
    if not docs.exists():
        # MMLU-shaped text, so the BPE covers the prompt's words (the numbers are what the fixture asks about)
        lines = [json.dumps({"text": f"Question {i}: what is {i} plus {i % 7}?\nA. {i}\nB. {2 * i}\nC. {i + i % 7}"
                                     f"\nD. {i + 1}\nAnswer: C"}) for i in range(300)]
        docs.write_text("\n".join(lines) + "\n")
    cfg = {"name": "mmlu-cell", "student": "tiny-0.1M", "method": "supervised",
           "data": {"kind": "corpus", "path": str(docs), "seq_len": 32, "heldout_fraction": 0.1,
                    "tokenizer_vocab_size": 300},
           "train": {"tokens": 2048, "batch_size": 8, "eval_batch_size": 8}}
    if eval_section:
        cfg["eval"] = eval_section
    return config_from_dict(cfg, "test.yaml")


@pytest.fixture(scope="module")
def evaluated_cell(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cell")
    data = tmp / "data"
    write_mmlu_fixture(data / "mmlu", subjects=SUBJECTS, n_test=4, n_dev=5, seed=1)
    cfg = _cell(tmp, benchmarks=["heldout", "mmlu"], data_root=str(data), num_fewshot=1)
    out = tmp / "run"
    return train(cfg, out, progress=False), out, data


def test_cell_runs_its_benchmarks_before_result_json(evaluated_cell):
    result, out, _ = evaluated_cell
    on_disk = json.loads((out / "result.json").read_text())
    bm = on_disk["benchmarks"]
    assert bm["heldout"]["loss"] == on_disk["loss"]
    mmlu = bm["mmlu"]
    assert mmlu["n"] == 12 and mmlu["num_fewshot"] == 1 and mmlu["judge"] == "loglikelihood"
    assert 0.0 <= mmlu["overall"] <= 1.0 and set(mmlu["groups"]) <= {"stem", "other", "social_sciences", "humanities"}
    # issue 27: the score's uncertainty and the degeneracy facts reach result.json beside it
    assert mmlu["stderr"] > 0 and set(mmlu["stderr_by_group"]) == set(mmlu["groups"]) and mmlu["chance"] == 0.25
    assert 0.0 <= mmlu["tied_fraction"] <= 1.0 and sum(mmlu["answer_counts"].values()) == mmlu["n"]
    assert 0.0 <= mmlu["answer_entropy"] <= 2.0 and mmlu["top_answer"] in "ABCD"
    assert (out / "eval" / "mmlu" / "results.json").exists()
    assert list((out / "eval" / "mmlu").glob("samples_*.jsonl"))
    assert json.loads((out / "eval" / "eval.json").read_text())["benchmarks"]["mmlu"]["overall"] == mmlu["overall"]


def test_suite_eval_cli_reproduces_the_cell(evaluated_cell, tmp_path, capsys):
    result, out, data = evaluated_cell
    rc = main(["eval", "--model", str(out / "model"), "--benchmarks", "mmlu,heldout", "--data-root", str(data),
               "--num-fewshot", "1", "--out", str(tmp_path / "ev"), "--json", "--no-progress"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["mmlu"]["overall"] == result["benchmarks"]["mmlu"]["overall"]
    assert res["heldout"]["loss"] == pytest.approx(result["loss"], rel=1e-5)  # the cell's data, found via result.json
    assert res["heldout"]["stderr"] > 0 and res["heldout"]["n_blocks"] == res["heldout"]["n"]


def test_errors_name_the_problem(evaluated_cell, tmp_path, capsys):
    _, out, data = evaluated_cell
    assert main(["eval", "--model", str(out / "model"), "--benchmarks", "mmlu,ai2dd"]) == 2
    assert "did you mean 'ai2d'" in capsys.readouterr().err
    # a data error is one line and exit 2 (issue 19: it used to escape as a ValueError traceback)
    assert main(["eval", "--model", str(out / "model"), "--benchmarks", "ai2d", "--data-root", str(data),
                 "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "vision-language benchmark" in capsys.readouterr().err
    assert main(["eval", "--model", str(out / "model"), "--benchmarks", "mmlu", "--out", str(tmp_path / "y")]) == 2
    assert "--data-root" in capsys.readouterr().err


def test_eval_section_is_validated_and_keeps_old_cell_ids(tmp_path):
    with pytest.raises(ConfigError, match=r"test.yaml: eval.benchmarks: unknown benchmark 'mmluu'.*did you mean"):
        _cell(tmp_path, benchmarks=["mmluu"])
    with pytest.raises(ConfigError, match=r"eval.prompt_style: 'qwen2-vl' is not one of .*did you mean 'qwen2vl'"):
        _cell(tmp_path, prompt_style="qwen2-vl")
    with pytest.raises(ConfigError, match="eval: unknown key 'judges'"):
        _cell(tmp_path, judges="none")
    plain = _cell(tmp_path)
    assert plain.eval == EvalConfig()
    assert plain.cell_id == _cell(tmp_path, benchmarks=[]).cell_id
    assert _cell(tmp_path, benchmarks=["mmlu"]).cell_id != plain.cell_id


def test_default_eval_section_leaves_quickstart_ids_unchanged():
    # ids of the committed quickstart study (reports/quickstart/results.parquet) computed before `eval` existed
    import pandas as pd

    from suite.sweep.grid import load_grid

    repo = Path(__file__).resolve().parents[2]
    committed = set(pd.read_parquet(repo / "reports/quickstart/results.parquet")["cell_id"])
    assert {c.id for c in load_grid(repo / "sweeps/quickstart.yaml").cells} == committed
