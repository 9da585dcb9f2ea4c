"""The lm-eval-layout copy of an MMLU evaluation: the files `lm_eval --output_path --log_samples` writes.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/eval/test_mmlu_layout.py -q    # ~15 s, 2 cores

One small evaluation (2 subjects, a tiny Llama); its copy is read back the way lm-eval-reading tools do (lm-eval's
own file-name helpers, `datasets` on the samples) and compared with what lm-eval's EvaluationTracker writes from
the same `simple_evaluate` result.
"""
from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from suite.eval.mmlu import evaluate_mmlu, sanitize_model_name, write_mmlu_fixture  # noqa: E402

lm_eval = pytest.importorskip("lm_eval")
SUBJECTS = {"anatomy": 3, "virology": 2}   # test questions each
NAME = "org/tiny[1]"                       # a model name with characters a folder name cannot keep


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """evaluate_mmlu into out/, and the raw simple_evaluate result it wrote from (caught on the way)."""
    import datasets
    import lm_eval.evaluator
    import pyarrow.parquet as pq

    from suite.data.tokenizers import train_bpe
    from suite.models.build import build_model

    base = tmp_path_factory.mktemp("layout")
    raw = {}
    real = lm_eval.evaluator.simple_evaluate

    @functools.wraps(real)
    def caught(*args, **kwargs):
        raw["res"] = real(*args, **kwargs)
        return raw["res"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", str(base / "hf_cache"))
        mp.setattr(lm_eval.evaluator, "simple_evaluate", caught)
        root = base / "data"
        for subject, n in SUBJECTS.items():
            write_mmlu_fixture(root, subjects=[subject], n_test=n, n_dev=2, n_validation=0, seed=0)
        texts = [f"{r['question']} {' '.join(r['choices'])}"
                 for p in sorted(root.glob("*/*.parquet")) for r in pq.read_table(p).to_pylist()]
        tok = train_bpe(texts, vocab_size=300)
        model = build_model("tiny-0.1M", vocab_size=len(tok), seed=0)
        summary = evaluate_mmlu(model, tok, root, num_fewshot=1, out_dir=base / "out", model_name=NAME,
                                progress=False)
        yield {"base": base, "out": base / "out", "res": raw["res"], "summary": summary}


def listing(folder: Path) -> list[str]:
    """Paths as lm-eval's hub code lists them: <model folder>/<file>."""
    return sorted(f"{p.parent.name}/{p.name}" for p in folder.glob("*/*"))


def test_layout_reads_back_like_lm_eval_output(run):
    from lm_eval.utils import (get_file_datetime, get_file_task_name, get_latest_filename, get_results_filenames,
                               get_sample_results_filenames)

    out = run["out"]
    files = listing(out / "lm_eval")
    assert {f.split("/")[0] for f in files} == {"org__tiny__1__"} == {sanitize_model_name(NAME)}
    results_files = get_results_filenames(files)
    assert len(results_files) == 1
    latest = get_latest_filename(results_files)
    res = json.loads((out / "lm_eval" / latest).read_text())
    for key in ("results", "groups", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better",
                "n-samples", "config", "date", "task_hashes", "model_name", "model_name_sanitized"):
        assert key in res, key
    assert "samples" not in res
    assert res["model_name"] == NAME and res["model_source"] == "hf"
    assert res["results"]["suite_mmlu"]["acc,none"] == pytest.approx(run["summary"]["overall"])
    leaf = {f"suite_mmlu_{s}" for s in SUBJECTS}
    assert set(res["configs"]) == leaf and set(res["task_hashes"]) == leaf
    assert res["n-shot"]["suite_mmlu_anatomy"] == 1

    sample_files = get_sample_results_filenames(files)
    assert {get_file_task_name(Path(f).name) for f in sample_files} == leaf
    # one date for the pair (lm-eval's helper strips ".jsonl" only: a results file keeps its ".json")
    assert {get_file_datetime(Path(f).name) for f in sample_files} == {
        get_file_datetime(Path(latest).name).removesuffix(".json")}
    for f in sample_files:
        task = get_file_task_name(Path(f).name)
        lines = [json.loads(x) for x in (out / "lm_eval" / f).read_text().splitlines()]
        assert len(lines) == res["n-samples"][task]["effective"] == SUBJECTS[task.removeprefix("suite_mmlu_")]
        assert [r["doc_id"] for r in lines] == list(range(len(lines)))
        first = lines[0]
        assert set(first["arguments"]) == {"gen_args_0", "gen_args_1", "gen_args_2", "gen_args_3"}
        assert set(first["arguments"]["gen_args_0"]) == {"arg_0", "arg_1"}         # (context, continuation)
        assert all(isinstance(x, str) for resp in first["filtered_resps"] for x in resp)
        assert isinstance(first["target"], str)
    # our own files are unchanged beside it: results.json and one samples file per subject at the top
    assert sorted(p.name for p in out.glob("samples_*.jsonl")) == sorted(f"samples_{t}.jsonl" for t in leaf)
    assert "lm_eval" in json.loads((out / "results.json").read_text())


def test_samples_load_with_datasets(run, tmp_path):
    """The reason lm-eval writes arguments and responses as text: `datasets` loads the file."""
    import datasets

    f = next((run["out"] / "lm_eval").glob("*/samples_suite_mmlu_anatomy_*.jsonl"))
    ds = datasets.load_dataset("json", data_files=str(f), split="train", cache_dir=str(tmp_path))
    assert ds.num_rows == SUBJECTS["anatomy"] and "filtered_resps" in ds.column_names


def test_same_files_as_lm_evals_own_tracker(run, tmp_path):
    """lm-eval's EvaluationTracker on the same result writes the same names, keys (in order) and values."""
    from lm_eval.loggers import EvaluationTracker

    res = copy.deepcopy(run["res"])
    samples = res.pop("samples")
    tracker = EvaluationTracker(output_path=str(tmp_path / "theirs"))
    tracker.general_config_tracker.log_experiment_args(
        model_source="hf", model_args={"pretrained": NAME}, system_instruction=None, chat_template=None,
        fewshot_as_multiturn=True)   # simple_evaluate's default, which evaluate_mmlu leaves alone
    tracker.save_results_aggregated(results=res, samples=samples)
    for task in res["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])

    def by_kind(folder: Path) -> dict[str, Path]:
        """results / samples_<task> -> the file, the date cut off"""
        return {p.name.rsplit("_", 1)[0]: p for p in folder.glob("*/*")}

    ours, theirs = by_kind(run["out"] / "lm_eval"), by_kind(tmp_path / "theirs")
    assert sorted(ours) == sorted(theirs) and len(ours) == 1 + len(SUBJECTS)
    assert {p.parent.name for p in ours.values()} == {p.parent.name for p in theirs.values()}
    a, b = (json.loads(d["results"].read_text()) for d in (ours, theirs))
    assert list(a) == list(b)
    a.pop("total_evaluation_time_seconds"), b.pop("total_evaluation_time_seconds")
    assert a == b
    for kind in ours:
        if kind != "results":
            assert ours[kind].read_text().splitlines() == theirs[kind].read_text().splitlines(), kind
