"""MMLU through lm-eval on local files: the configs equal upstream's, and scores equal lm-eval's built-in `mmlu`.

    HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 python -m pytest tests/eval/test_mmlu.py -q     # ~35 s on 2 CPU cores

The equality tests run the installed lm_eval's own `mmlu` group (its shipped YAMLs, unmodified) with
`datasets.load_dataset` redirected from `cais/mmlu` to the fixture files. The built-in group always holds all
57 subjects, so the shared fixture has all 57 with 2-5 test questions each (sizes differ, so a size-weighted
mean and a plain mean of subjects differ too).
"""
from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from suite.eval.mmlu import (  # noqa: E402
    GROUPS, SUBJECTS, MMLUDataError, choice_statistics, description, evaluate_mmlu, find_subjects,
    write_mmlu_fixture, write_tasks,
)

lm_eval = pytest.importorskip("lm_eval")
UPSTREAM = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / "default"
# test questions per subject: 2, except these (unequal sizes make unequal weights; with 1 question a subject's
# stderr, and so every group's pooled one, would be "N/A")
SIZES = {"abstract_algebra": 5, "anatomy": 3, "business_ethics": 4, "econometrics": 3, "formal_logic": 5,
         "virology": 3, "sociology": 4}
K = 5  # few-shot examples: the usual "MMLU 5-shot", all of the fixture's dev split


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The 57-subject parquet fixture, a BPE trained on it, a tiny Llama, and a private `datasets` cache."""
    import datasets

    from suite.data.tokenizers import train_bpe
    from suite.models.build import build_model

    base = tmp_path_factory.mktemp("mmlu")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", str(base / "hf_cache"))  # keep ~/.cache clean
        root = write_mmlu_fixture(base / "data", n_test=2, n_dev=5, n_validation=1, seed=0)
        for subject, n in SIZES.items():
            write_mmlu_fixture(root, subjects=[subject], n_test=n, n_dev=5, n_validation=1, seed=0)
        texts = [f"{r['question']} {' '.join(r['choices'])}"
                 for p in sorted(root.glob("*/*.parquet")) for r in pq.read_table(p).to_pylist()]
        tok = train_bpe(texts, vocab_size=400)
        model = build_model("tiny-0.1M", vocab_size=len(tok), seed=0)
        yield {"root": root, "tok": tok, "model": model, "base": base}


@pytest.fixture(scope="module")
def local0(env):
    return evaluate_mmlu(env["model"], env["tok"], env["root"], num_fewshot=0, out_dir=env["base"] / "out0")


@pytest.fixture(scope="module")
def local_k(env):
    return evaluate_mmlu(env["model"], env["tok"], env["root"], num_fewshot=K, out_dir=env["base"] / "outk")


def _redirect_hub_mmlu(mp, root: Path) -> list:
    """datasets.load_dataset("cais/mmlu" | "hails/mmlu_no_train", name=subject) -> the fixture's parquet files."""
    import datasets

    real, calls = datasets.load_dataset, []

    def load_dataset(path, name=None, **kwargs):
        if path in ("cais/mmlu", "hails/mmlu_no_train"):
            calls.append(name)
            files = {s: str(next((root / name).glob(f"{s}-*.parquet"))) for s in ("test", "dev", "validation")}
            return real("parquet", name=name, data_files=files, **kwargs)
        return real(path, name=name, **kwargs)

    mp.setattr(datasets, "load_dataset", load_dataset)
    return calls


def _builtin_mmlu(env, num_fewshot: int) -> dict:
    """lm-eval's own computation: simple_evaluate on the installed `mmlu` group, reading the fixture."""
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    # the shipped mmlu folder alone: the same YAML files as a full index (asserted), ~1 s instead of ~13 s
    tm = TaskManager(include_path=str(UPSTREAM), include_defaults=False)
    assert tm.task_index["mmlu"].yaml_path == UPSTREAM / "_mmlu.yaml"
    with pytest.MonkeyPatch.context() as mp:
        calls = _redirect_hub_mmlu(mp, env["root"])
        lm = HFLM(pretrained=env["model"], tokenizer=env["tok"], batch_size=16)
        res = lm_eval.simple_evaluate(model=lm, tasks=["mmlu"], num_fewshot=num_fewshot, task_manager=tm,
                                      log_samples=True)
    assert sorted(calls) == sorted(SUBJECTS)
    return res


# --------------------------------------------------------------------------- configs equal upstream

def _upstream_yaml(name: str) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(UPSTREAM / name)


def test_subjects_and_groups_match_the_installed_lm_eval():
    tags = {}
    for path in sorted(UPSTREAM.glob("mmlu_*.yaml")):
        cfg = _upstream_yaml(path.name)
        tags[cfg["dataset_name"]] = cfg["tag"]
    assert len(tags) == 57
    assert {s: f"mmlu_{g}_tasks" for s, g in SUBJECTS.items()} == tags
    assert _upstream_yaml("_mmlu.yaml")["task"] == [f"mmlu_{g}" for g in GROUPS]
    for g, alias in GROUPS.items():
        assert _upstream_yaml(f"_mmlu_{g}.yaml")["group_alias"] == alias


def test_written_yaml_fields_equal_upstream(env, tmp_path):
    from lm_eval.tasks._yaml_loader import load_yaml

    group = write_tasks(env["root"], tmp_path / "tasks", prefix="loc")
    assert group == "loc"
    fields = ("doc_to_text", "doc_to_choice", "doc_to_target", "test_split", "fewshot_split", "fewshot_config",
              "output_type", "metric_list", "metadata", "description", "dataset_name", "task_alias")
    for subject, g in SUBJECTS.items():
        ours, theirs = load_yaml(tmp_path / "tasks" / f"loc_{subject}.yaml"), _upstream_yaml(f"mmlu_{subject}.yaml")
        assert {f: ours[f] for f in fields} == {f: theirs[f] for f in fields}, subject
        assert ours["description"] == description(subject)
        assert (ours["task"], ours["tag"]) == (f"loc_{subject}", f"loc_{g}_tasks")
        assert theirs["tag"] == f"mmlu_{g}_tasks"
        assert ours["dataset_path"] == "parquet"
        assert Path(ours["dataset_kwargs"]["data_files"]["test"][0]) == (env["root"] / subject /
                                                                          "test-00000-of-00001.parquet").resolve()
    for g in GROUPS:
        ours, theirs = load_yaml(tmp_path / "tasks" / f"_loc_{g}.yaml"), _upstream_yaml(f"_mmlu_{g}.yaml")
        assert {k: v for k, v in ours.items() if k not in ("group", "task")} == \
               {k: v for k, v in theirs.items() if k not in ("group", "task")}
        assert (ours["group"], ours["task"]) == (f"loc_{g}", [f"loc_{g}_tasks"])
    ours, theirs = load_yaml(tmp_path / "tasks" / "_loc.yaml"), _upstream_yaml("_mmlu.yaml")
    assert ours["task"] == [f"loc_{g}" for g in GROUPS]
    assert (ours["aggregate_metric_list"], ours["metadata"]) == (theirs["aggregate_metric_list"], theirs["metadata"])
    assert theirs["aggregate_metric_list"] == [{"metric": "acc", "weight_by_size": True}]


def test_write_tasks_keeps_present_subjects_only_and_drops_empty_groups(tmp_path):
    root = write_mmlu_fixture(tmp_path / "d", subjects=["anatomy", "virology"], n_test=1, n_dev=1, n_validation=0,
                              fmt="jsonl")
    task_dir = tmp_path / "t"
    write_tasks(root, task_dir)
    names = sorted(p.name for p in task_dir.iterdir())
    assert names == ["_suite_mmlu.yaml", "_suite_mmlu_other.yaml", "_suite_mmlu_stem.yaml",
                     "_suite_mmlu_template_yaml", "suite_mmlu_anatomy.yaml", "suite_mmlu_virology.yaml"]
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(task_dir / "suite_mmlu_anatomy.yaml")
    assert cfg["dataset_path"] == "json" and list(cfg["dataset_kwargs"]["data_files"]) == ["test", "dev"]
    assert load_yaml(task_dir / "_suite_mmlu.yaml")["task"] == ["suite_mmlu_stem", "suite_mmlu_other"]
    # a second call with fewer subjects leaves no stale YAML behind
    write_tasks(root, task_dir, subjects=["virology"])
    assert sorted(p.name for p in task_dir.glob("*.yaml")) == ["_suite_mmlu.yaml", "_suite_mmlu_other.yaml",
                                                               "suite_mmlu_virology.yaml"]


# --------------------------------------------------------------------------- fixture

def test_fixture_has_the_cais_layout_and_is_deterministic(env, tmp_path):
    root = env["root"]
    assert sorted(p.name for p in (root / "anatomy").iterdir()) == [
        "dev-00000-of-00001.parquet", "test-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
    table = pq.read_table(root / "abstract_algebra" / "test-00000-of-00001.parquet")
    assert [(f.name, str(f.type)) for f in table.schema] == [
        ("question", "string"), ("subject", "string"), ("choices", "list<element: string>"), ("answer", "int64")]
    rows = table.to_pylist()
    assert len(rows) == 5 and {r["subject"] for r in rows} == {"abstract_algebra"}
    for r in rows:
        assert len(set(r["choices"])) == 4 and 0 <= r["answer"] <= 3
    # same seed: same rows in jsonl, whatever else is written; another seed: other rows
    jl = write_mmlu_fixture(tmp_path / "j", subjects=["abstract_algebra"], n_test=5, fmt="jsonl")
    lines = (jl / "abstract_algebra" / "test.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == rows
    assert sorted(p.name for p in (jl / "abstract_algebra").iterdir()) == ["dev.jsonl", "test.jsonl",
                                                                           "validation.jsonl"]
    other = write_mmlu_fixture(tmp_path / "s1", subjects=["abstract_algebra"], n_test=5, seed=1)
    assert pq.read_table(other / "abstract_algebra" / "test-00000-of-00001.parquet").to_pylist() != rows
    assert len(list(root.iterdir())) == 57


# --------------------------------------------------------------------------- scores equal lm-eval's

def _assert_equal_to_builtin(ours: dict, res: dict) -> None:
    r = res["results"]
    assert ours["subjects"] == {s: r[f"mmlu_{s}"]["acc,none"] for s in SUBJECTS}
    assert ours["groups"] == {g: r[f"mmlu_{g}"]["acc,none"] for g in GROUPS}
    assert ours["overall"] == r["mmlu"]["acc,none"]
    assert ours["stderr"] == r["mmlu"]["acc_stderr,none"] and isinstance(ours["stderr"], float)
    assert ours["stderr_by_group"] == {g: r[f"mmlu_{g}"]["acc_stderr,none"] for g in GROUPS}
    assert ours["n"] == sum(2 if s not in SIZES else SIZES[s] for s in SUBJECTS) == r["mmlu"]["sample_len"]


def test_zero_shot_equals_builtin_mmlu(env, local0):
    res = _builtin_mmlu(env, 0)
    _assert_equal_to_builtin(local0, res)
    assert res["n-shot"]["mmlu_anatomy"] == 0 and local0["num_fewshot"] == 0
    # the prompt itself, as upstream builds it
    doc = res["samples"]["mmlu_anatomy"][0]["doc"]
    ch = doc["choices"]
    prompt = (f"The following are multiple choice questions (with answers) about anatomy.\n\n{doc['question'].strip()}"
              f"\nA. {ch[0]}\nB. {ch[1]}\nC. {ch[2]}\nD. {ch[3]}\nAnswer:")
    ours = [json.loads(x) for x in (env["base"] / "out0" / "samples_suite_mmlu_anatomy.jsonl").read_text().splitlines()]
    assert [a[0] for a in ours[0]["arguments"]] == [prompt] * 4
    assert [a[1] for a in ours[0]["arguments"]] == [" A", " B", " C", " D"]


def test_k_shot_equals_builtin_mmlu(env, local0, local_k):
    res = _builtin_mmlu(env, K)
    _assert_equal_to_builtin(local_k, res)
    assert res["n-shot"]["mmlu_anatomy"] == K and local_k["num_fewshot"] == K
    assert local_k["subjects"] != local0["subjects"]  # the few-shot context reached the model
    # first_n: the dev rows in file order, each with its answer letter, "\n\n" between examples
    dev = pq.read_table(env["root"] / "anatomy" / "dev-00000-of-00001.parquet").to_pylist()
    shots = "".join(f"{d['question'].strip()}\nA. {d['choices'][0]}\nB. {d['choices'][1]}\nC. {d['choices'][2]}\n"
                    f"D. {d['choices'][3]}\nAnswer: {'ABCD'[d['answer']]}\n\n" for d in dev)
    ours = json.loads((env["base"] / "outk" / "samples_suite_mmlu_anatomy.jsonl").read_text().splitlines()[0])
    assert ours["arguments"][0][0].startswith(description("anatomy") + shots)


def test_upstream_option_runs_lm_evals_own_task(env, local0):
    with pytest.MonkeyPatch.context() as mp:
        calls = _redirect_hub_mmlu(mp, env["root"])
        up = evaluate_mmlu(env["model"], env["tok"], None, task="upstream")
    assert len(calls) == 57
    assert up["lm_eval_task"] == "mmlu" and up["task"] == "upstream"
    for key in ("overall", "groups", "subjects", "n", "stderr"):
        assert up[key] == local0[key], key


def test_groups_are_size_weighted_over_questions(env, local0):
    out = env["base"] / "out0"
    correct, count = {}, {}
    for s in SUBJECTS:
        accs = [json.loads(x)["acc"] for x in (out / f"samples_suite_mmlu_{s}.jsonl").read_text().splitlines()]
        correct[s], count[s] = sum(accs), len(accs)
        assert local0["subjects"][s] == pytest.approx(correct[s] / count[s], abs=1e-12)
    assert local0["n_by_subject"] == count
    for g in GROUPS:
        members = [s for s in SUBJECTS if SUBJECTS[s] == g]
        weighted = sum(correct[s] for s in members) / sum(count[s] for s in members)
        plain = sum(correct[s] / count[s] for s in members) / len(members)
        assert local0["groups"][g] == pytest.approx(weighted, abs=1e-12)
        assert local0["n_by_group"][g] == sum(count[s] for s in members)
        if g in ("stem", "social_sciences"):  # the fixture makes these two differ; the check has teeth
            assert not math.isclose(weighted, plain, abs_tol=1e-9)
    assert local0["overall"] == pytest.approx(sum(correct.values()) / sum(count.values()), abs=1e-12)
    assert local0["n"] == sum(count.values())


def test_outputs_on_disk(env, local0):
    out = env["base"] / "out0"
    saved = json.loads((out / "results.json").read_text())
    assert {k: saved[k] for k in local0} == json.loads(json.dumps(local0))
    assert saved["benchmark"] == "mmlu" and saved["lm_eval_version"] == lm_eval.__version__
    assert saved["lm_eval"]["results"]["suite_mmlu"]["acc,none"] == local0["overall"]
    assert sorted(saved["lm_eval"]["group_subtasks"]["suite_mmlu"]) == sorted(f"suite_mmlu_{g}" for g in GROUPS)
    assert len(list(out.glob("samples_*.jsonl"))) == 57
    assert len(list((out / "tasks").glob("*.yaml"))) == 57 + 4 + 1
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporaries


# --------------------------------------------------------------------------- formats, subsets, tokenizers

def test_jsonl_scores_equal_parquet_and_subset_groups(env, tmp_path):
    subjects = ["abstract_algebra", "anatomy", "virology"]  # stem + other only
    jl = write_mmlu_fixture(tmp_path / "jl", subjects=subjects, n_test=2, n_dev=5, n_validation=1, fmt="jsonl")
    for s, n in SIZES.items():
        if s in subjects:
            write_mmlu_fixture(jl, subjects=[s], n_test=n, n_dev=5, n_validation=1, fmt="jsonl")
    a = evaluate_mmlu(env["model"], env["tok"], jl, num_fewshot=2)
    b = evaluate_mmlu(env["model"], env["tok"], env["root"], num_fewshot=2, subjects=subjects)
    assert a["subjects"] == b["subjects"] and a["groups"] == b["groups"] and a["overall"] == b["overall"]
    assert list(a["groups"]) == ["stem", "other"] and sorted(a["subjects"]) == subjects
    assert a["n"] == 5 + 3 + 3


def test_tokenizer_without_pad_or_bos_is_handled_and_left_unchanged(env):
    tok = copy.deepcopy(env["tok"])
    tok.pad_token = None
    tok.bos_token = None
    subjects = ["anatomy", "sociology"]
    base = evaluate_mmlu(env["model"], env["tok"], env["root"], subjects=subjects, limit=2)
    env["model"].train()
    try:
        bare = evaluate_mmlu(env["model"], tok, env["root"], subjects=subjects, limit=2)
        assert env["model"].training  # HFLM's model.eval() is undone for a caller that was training
    finally:
        env["model"].eval()
    assert bare["subjects"] == base["subjects"]
    assert tok.pad_token is None and tok.bos_token is None and len(tok) == len(env["tok"])
    assert base["n"] == 2 + 2 and base["n_by_subject"] == {"anatomy": 2, "sociology": 2}  # limit: per subject
    assert getattr(tok, "chat_template", None) is None


# --------------------------------------------------------------------------- errors

def test_missing_files_and_wrong_columns_name_the_file(env, tmp_path):
    import pyarrow as pa

    with pytest.raises(MMLUDataError, match=r"no MMLU subject folders under .*test-00000-of-00001\.parquet"):
        find_subjects(tmp_path)
    root = write_mmlu_fixture(tmp_path / "d", subjects=["anatomy"], n_test=2, n_dev=0)
    with pytest.raises(MMLUDataError, match=r"missing .*anatomy/dev-00000-of-00001\.parquet"):
        find_subjects(root)
    with pytest.raises(MMLUDataError, match=r"'virology' was asked for but .*virology does not exist"):
        find_subjects(root, subjects=["virology"])
    with pytest.raises(ValueError, match="did you mean anatomy"):
        find_subjects(root, ["anatomyy"])

    bad = tmp_path / "bad" / "anatomy"
    bad.mkdir(parents=True)
    pq.write_table(pa.table({"question": ["q"], "options": [["a", "b", "c", "d"]], "answer": [0]}),
                   bad / "test-00000-of-00001.parquet")
    pq.write_table(pa.table({"question": ["q"], "choices": [["a", "b", "c", "d"]], "answer": [0]}),
                   bad / "dev-00000-of-00001.parquet")
    with pytest.raises(MMLUDataError, match=r"anatomy/test-00000-of-00001\.parquet: missing column\(s\) choices "
                                            r"\(has question, options, answer\); expected .*choices:list\[str\] of 4"):
        find_subjects(tmp_path / "bad")

    jl = write_mmlu_fixture(tmp_path / "jl", subjects=["anatomy"], n_test=2, n_dev=1, fmt="jsonl")
    test = jl / "anatomy" / "test.jsonl"
    rows = [json.loads(x) for x in test.read_text().splitlines()]
    rows[1]["answer"] = "B"
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(MMLUDataError, match=r"anatomy/test\.jsonl: row 1: answer must be an int 0-3"):
        find_subjects(jl)
    rows[1]["answer"], rows[1]["choices"] = 1, ["a", "b", "c"]
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(MMLUDataError, match=r"row 1: choices must be a list of 4 str"):
        find_subjects(jl)
    test.write_text('{"question": "q"}\n')
    with pytest.raises(MMLUDataError, match=r"test\.jsonl:1: missing key\(s\) choices, answer"):
        find_subjects(jl)


def test_bad_arguments_fail_before_running(env, tmp_path):
    with pytest.raises(ValueError, match=r"num_fewshot=6 but subject 'abstract_algebra' has only 5 dev"):
        evaluate_mmlu(env["model"], env["tok"], env["root"], num_fewshot=6)
    with pytest.raises(ValueError, match="valid are 'local'"):
        evaluate_mmlu(env["model"], env["tok"], env["root"], task="hub")
    with pytest.raises(ValueError, match="pass data_dir=None"):
        evaluate_mmlu(env["model"], env["tok"], env["root"], task="upstream")
    with pytest.raises(ValueError, match="pass the tokenizer"):
        evaluate_mmlu(env["model"], None, env["root"], subjects=["anatomy"])
    with pytest.raises(ValueError, match="prefix"):
        write_tasks(env["root"], tmp_path / "t", prefix="bad-prefix")


def test_no_progress_silences_lm_evals_own_bars(env, capfd):
    """`--no-progress` reaches lm-eval: its tqdm bars ("Running loglikelihood requests") print nothing, and the
    scores are the same. With progress on, the bar is there (so this test can tell the two apart)."""
    subjects = ["abstract_algebra"]
    quiet = evaluate_mmlu(env["model"], env["tok"], env["root"], subjects=subjects, progress=False)
    err_quiet = capfd.readouterr().err
    loud = evaluate_mmlu(env["model"], env["tok"], env["root"], subjects=subjects, progress=True)
    err_loud = capfd.readouterr().err
    assert "loglikelihood requests" in err_loud and "it/s" in err_loud
    assert "loglikelihood requests" not in err_quiet and "it/s" not in err_quiet
    assert quiet["overall"] == loud["overall"]
    import lm_eval.models.huggingface as hf
    from tqdm import tqdm

    assert hf.tqdm is tqdm  # restored afterwards


# --------------------------------------------------------------------------- uncertainty and degenerate scores

def _sample(lls, target=0, filter_key="none"):
    """A record shaped like lm-eval 0.4's `samples[task][i]` for a multiple_choice task (evaluator.py): one
    request per choice, `resps` [[(loglik, is_greedy)]] per choice, `filtered_resps` [(loglik, is_greedy)]."""
    return {"doc_id": 0, "doc": {"question": "q", "choices": ["1", "2", "3", "4"][:len(lls)], "answer": target},
            "target": target, "arguments": [("q\nAnswer:", f" {'ABCD'[i]}") for i in range(len(lls))],
            "resps": [[(ll, False)] for ll in lls], "filtered_resps": [(ll, False) for ll in lls],
            "filter": filter_key, "metrics": ["acc"], "acc": float(max(range(len(lls)), key=lls.__getitem__) == target)}


def test_choice_statistics_finds_tied_choices_on_lm_eval_samples():
    samples = [_sample([-2.5, -2.5, -2.5, -2.5]),                    # tied exactly (letters all <unk>)
               _sample([-3.0, -3.0 + 4e-7, -3.0 - 5e-7, -3.0]),      # within 1e-6: tied (argmax still B)
               _sample([-1.0, -1.0 + 2e-6, -1.0, -1.0]),             # B wins by 2e-6: not tied
               _sample([-4.0, -6.0, -1.5, -9.0]),                    # C
               _sample([-4.0, -6.0, -1.5, -9.0], filter_key="other")]  # another filter's copy: skipped
    st = choice_statistics(samples)
    assert st["tied_fraction"] == pytest.approx(2 / 4) and st["n_tied"] == 2
    assert st["answer_counts"] == {"A": 1, "B": 2, "C": 1}           # argmax, first on exact ties (lm-eval's acc)
    assert st["top_answer"] == "B" and st["top_answer_share"] == 0.5
    assert st["answer_entropy"] == pytest.approx(1.5)                # p = (1/2, 1/4, 1/4)
    assert st["chance"] == 0.25
    # as read back from samples_*.jsonl (tuples become lists): the same
    assert choice_statistics(json.loads(json.dumps(samples))) == st
    # all tied: the degenerate case the flag is for
    tied = choice_statistics([_sample([-7.0] * 4, target=t) for t in (0, 1, 2, 3, 1)])
    assert tied["tied_fraction"] == 1.0 and tied["answer_entropy"] == 0.0 and tied["top_answer_share"] == 1.0
    assert choice_statistics([])["tied_fraction"] is None
    assert choice_statistics([_sample([-1.0, -2.0])])["chance"] == 0.5    # two choices: 1/2


def test_summary_carries_stderrs_and_choice_statistics(env, local0):
    out = env["base"] / "out0"
    saved = json.loads((out / "results.json").read_text())["lm_eval"]["results"]
    # lm-eval's group stderr is pooled over the group's subjects (api/metrics.py pooled_sample_stderr)
    for g in GROUPS:
        members = [s for s in SUBJECTS if SUBJECTS[s] == g]
        se = [saved[f"suite_mmlu_{s}"]["acc_stderr,none"] for s in members]
        n = [saved[f"suite_mmlu_{s}"]["sample_len"] for s in members]
        pooled = math.sqrt(sum((ni - 1) * ni * e ** 2 for ni, e in zip(n, se)) / (sum(n) - len(n)) / sum(n))
        assert local0["stderr_by_group"][g] == pytest.approx(pooled, rel=1e-12)
    assert 0 < local0["stderr"] < 0.5
    # the predicted letters are the argmax of each question's choice log-likelihoods
    letters = {}
    for path in out.glob("samples_*.jsonl"):
        for line in path.read_text().splitlines():
            lls = [r[0] for r in json.loads(line)["filtered_resps"]]
            letter = "ABCD"[lls.index(max(lls))]
            letters[letter] = letters.get(letter, 0) + 1
    assert local0["answer_counts"] == dict(sorted(letters.items())) and sum(letters.values()) == local0["n"]
    assert local0["chance"] == 0.25 and local0["tied_fraction"] == 0.0
    assert local0["top_answer_share"] == max(letters.values()) / local0["n"]
    # what result.json keeps of it
    from suite.eval.benchmarks import summary

    kept = summary(local0)
    for key in ("stderr", "stderr_by_group", "tied_fraction", "answer_entropy", "top_answer", "top_answer_share",
                "chance", "answer_counts"):
        assert kept[key] == local0[key], key


def test_a_model_that_scores_every_choice_alike_is_flagged(env):
    """Zero LM head: every token has log-prob -log V, and the four one-token letters tie on every question."""
    import torch

    flat = copy.deepcopy(env["model"])
    with torch.no_grad():
        flat.get_output_embeddings().weight.zero_()
    subjects = ["anatomy", "sociology", "formal_logic"]
    res = evaluate_mmlu(flat, env["tok"], env["root"], subjects=subjects, progress=False)
    assert res["tied_fraction"] == 1.0 and res["n_tied"] == res["n"] == 3 + 4 + 5
    assert res["answer_counts"] == {"A": 12} and res["answer_entropy"] == 0.0 and res["top_answer_share"] == 1.0
    # lm-eval's argmax then picks A everywhere: the accuracy is the share of questions whose answer is A
    answers = [r["answer"] for s in subjects
               for r in pq.read_table(env["root"] / s / "test-00000-of-00001.parquet").to_pylist()]
    assert res["overall"] == pytest.approx(answers.count(0) / len(answers))
