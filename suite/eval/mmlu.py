"""MMLU through lm-evaluation-harness, from local files in the `cais/mmlu` layout (or lm-eval's own hub task).

    from suite.eval.mmlu import evaluate_mmlu, write_mmlu_fixture
    res = evaluate_mmlu(model, tok, "data/mmlu", num_fewshot=5, out_dir="runs/x/eval/mmlu")
    res["overall"], res["groups"]["stem"], res["subjects"]["anatomy"]    # accuracies, size-weighted like upstream
    res["stderr"], res["stderr_by_group"]["stem"]                       # lm-eval's stderrs of those (fractions)
    res["tied_fraction"], res["answer_entropy"], res["top_answer_share"], res["chance"]   # degenerate-score facts
    evaluate_mmlu(model, tok, None, task="upstream")                    # lm-eval's built-in `mmlu` (needs the hub)
    write_mmlu_fixture("tmp/mmlu", subjects=["anatomy"], n_test=8, fmt="jsonl")   # synthetic, same layout
    write_tasks("data/mmlu", "tmp/tasks")                               # -> "suite_mmlu", for TaskManager(include_path)
    find_subjects("data/mmlu")       # [SubjectFiles] of the subjects present, validated (MMLUDataError names the file)

The task configs written here are the upstream `lm_eval/tasks/mmlu/default` ones (same prompt, `first_n` few-shot
from `dev`, per-subject description, four groups with `weight_by_size`, parent group), with `dataset_path`
`parquet` / `json` and `data_files` pointing at the local files instead of `cais/mmlu`. Only the names differ
(`suite_mmlu_anatomy`, not `mmlu_anatomy`), so they never shadow the built-in tasks.

Data layout (what `datasets` shows for `cais/mmlu`, one folder per subject):
    <root>/<subject>/test-00000-of-00001.parquet   dev-00000-of-00001.parquet   validation-00000-of-00001.parquet
    <root>/<subject>/test.jsonl                    dev.jsonl                    validation.jsonl     (jsonl variant)
columns question:str, subject:str, choices:list[str] of 4, answer:int 0-3. `test` and `dev` are required (dev
holds the few-shot examples; upstream builds its few-shot sampler even at 0-shot), `validation` is optional and
unused. Subject folders that are absent are skipped (a group with none of its subjects is left out).

Uncertainty (issue 27): `stderr` is lm-eval's `acc_stderr,none` of the parent group, `stderr_by_group` each
group's; a subject's is the sample SD of its 0/1 item scores (ddof=1) / sqrt(n), and a size-weighted group's is
`pooled_sample_stderr`: sqrt(sum_i (n_i - 1) n_i se_i^2 / (N - k) / N), the pooled within-subject variance
over N questions (subjects are strata; the spread between subject means is not in it). None where lm-eval says
"N/A" (a subject with one question). `choice_statistics` reads lm-eval's per-question samples: the fraction
of questions whose four choice log-likelihoods are tied, the entropy and top share of the predicted letters,
and chance (0.25).

Outputs with `out_dir`: results.json (the summary returned, plus lm-eval's own results, groups, configs,
versions and n-shot), samples_<task>.jsonl (lm-eval's per-question records, one file per subject task) and
tasks/ (the YAMLs that were run). Every file is written atomically. Beside them, a copy in the layout of
`lm_eval --output_path OUT/lm_eval --log_samples`, for the tools that read lm-eval's files (one pair per
evaluation; the newest date is the latest, as lm-eval's own readers take it):
    lm_eval/<model_name_sanitized>/results_<date>.json           lm-eval's whole results dict: results, groups,
                                                                  configs, versions, n-shot, n-samples, config,
                                                                  task_hashes, model_name, ...
    lm_eval/<model_name_sanitized>/samples_<task>_<date>.jsonl   one line per question, each leaf task
<date> is the ISO time with ":" as "-" (2025-01-31T12-00-00.123456); the model's name is `model_name` (else
the model's `name_or_path`, else "model") with lm-eval's rule for a folder name ("/" and the like become "__").
"""
from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import logging
import os
import random
import re
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .._io import atomic_write_json, atomic_write_text
from ..config import InputError
from .uncertainty import answer_distribution

# The 57 subjects of lm_eval/tasks/mmlu/default (0.4.13), each with the group its `tag` puts it in
# (19 stem, 13 other, 12 social_sciences, 13 humanities).
SUBJECTS: dict[str, str] = {
    "abstract_algebra": "stem",
    "anatomy": "stem",
    "astronomy": "stem",
    "business_ethics": "other",
    "clinical_knowledge": "other",
    "college_biology": "stem",
    "college_chemistry": "stem",
    "college_computer_science": "stem",
    "college_mathematics": "stem",
    "college_medicine": "other",
    "college_physics": "stem",
    "computer_security": "stem",
    "conceptual_physics": "stem",
    "econometrics": "social_sciences",
    "electrical_engineering": "stem",
    "elementary_mathematics": "stem",
    "formal_logic": "humanities",
    "global_facts": "other",
    "high_school_biology": "stem",
    "high_school_chemistry": "stem",
    "high_school_computer_science": "stem",
    "high_school_european_history": "humanities",
    "high_school_geography": "social_sciences",
    "high_school_government_and_politics": "social_sciences",
    "high_school_macroeconomics": "social_sciences",
    "high_school_mathematics": "stem",
    "high_school_microeconomics": "social_sciences",
    "high_school_physics": "stem",
    "high_school_psychology": "social_sciences",
    "high_school_statistics": "stem",
    "high_school_us_history": "humanities",
    "high_school_world_history": "humanities",
    "human_aging": "other",
    "human_sexuality": "social_sciences",
    "international_law": "humanities",
    "jurisprudence": "humanities",
    "logical_fallacies": "humanities",
    "machine_learning": "stem",
    "management": "other",
    "marketing": "other",
    "medical_genetics": "other",
    "miscellaneous": "other",
    "moral_disputes": "humanities",
    "moral_scenarios": "humanities",
    "nutrition": "other",
    "philosophy": "humanities",
    "prehistory": "humanities",
    "professional_accounting": "other",
    "professional_law": "humanities",
    "professional_medicine": "other",
    "professional_psychology": "social_sciences",
    "public_relations": "social_sciences",
    "security_studies": "social_sciences",
    "sociology": "social_sciences",
    "us_foreign_policy": "social_sciences",
    "virology": "other",
    "world_religions": "humanities",
}

# Upstream order of the parent group's children, and each group's `group_alias`.
GROUPS: dict[str, str] = {"stem": "stem", "other": "other", "social_sciences": "social sciences",
                          "humanities": "humanities"}
SPLITS: tuple[str, ...] = ("test", "dev", "validation")
_REQUIRED_SPLITS = ("test", "dev")

# Upstream `_default_template_yaml`, minus `dataset_path: cais/mmlu` (each subject names its own files).
TEMPLATE: dict[str, Any] = {
    "test_split": "test",
    "fewshot_split": "dev",
    "fewshot_config": {"sampler": "first_n"},
    "output_type": "multiple_choice",
    "doc_to_text": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. "
                   "{{choices[3]}}\nAnswer:",
    "doc_to_choice": ["A", "B", "C", "D"],
    "doc_to_target": "answer",
    "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    "metadata": {"version": 1.0},
}
GROUP_AGGREGATION: list[dict[str, Any]] = [{"metric": "acc", "weight_by_size": True}]
GROUP_METADATA: dict[str, Any] = {"version": 2}

_EXPECTED = ("the cais/mmlu layout: <root>/<subject>/{split}-00000-of-00001.parquet or <root>/<subject>/"
             "{split}.jsonl, columns question:str, subject:str, choices:list[str] of 4, answer:int 0-3")
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class MMLUDataError(InputError):
    """Local MMLU files that are missing or do not have the cais/mmlu columns; the message names the file."""


def description(subject: str) -> str:
    """The upstream per-subject `description` (the prompt's first line)."""
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


@dataclass(frozen=True)
class SubjectFiles:
    """One subject folder: its format, files per split and rows per split (validated)."""
    subject: str
    fmt: str                               # "parquet" | "json": the `datasets` builder, i.e. lm-eval dataset_path
    files: dict[str, tuple[str, ...]]      # split -> absolute paths (several shards allowed)
    sizes: dict[str, int]                  # split -> rows


# --------------------------------------------------------------------------- local files

def find_subjects(data_dir: str | os.PathLike, subjects: Sequence[str] | None = None) -> list[SubjectFiles]:
    """The subjects present under `data_dir` (all 57 looked for, or `subjects`), each validated.

    A subject folder that is absent is skipped, unless it was asked for by name in `subjects`.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise MMLUDataError(f"MMLU data directory {root} does not exist; expected {_EXPECTED.format(split='test')}")
    wanted = _check_subjects(subjects)
    found = []
    for subject in wanted:
        folder = root / subject
        if not folder.is_dir():
            if subjects is not None:
                raise MMLUDataError(f"MMLU subject {subject!r} was asked for but {folder} does not exist; "
                                    f"expected {_EXPECTED.format(split='test')}")
            continue
        found.append(_subject_files(folder, subject))
    if not found:
        raise MMLUDataError(
            f"no MMLU subject folders under {root.resolve()} (looked for {len(wanted)}: "
            f"{', '.join(wanted[:3])}{', ...' if len(wanted) > 3 else ''}); expected {_EXPECTED.format(split='test')}")
    return found


def _check_subjects(subjects: Sequence[str] | None) -> list[str]:
    if subjects is None:
        return list(SUBJECTS)
    if isinstance(subjects, str):
        subjects = [subjects]
    for s in subjects:
        if s not in SUBJECTS:
            close = difflib.get_close_matches(s, list(SUBJECTS), n=3)
            hint = f"; did you mean {' / '.join(close)}?" if close else f"; valid: {', '.join(SUBJECTS)}"
            raise ValueError(f"unknown MMLU subject {s!r}{hint}")
    return list(dict.fromkeys(subjects))


def _split_files(folder: Path, split: str, suffix: str) -> list[Path]:
    shards = sorted(folder.glob(f"{split}-*.{suffix}"))
    single = folder / f"{split}.{suffix}"
    return shards or ([single] if single.is_file() else [])


def _subject_files(folder: Path, subject: str) -> SubjectFiles:
    by_fmt = {fmt: {s: _split_files(folder, s, suffix) for s in SPLITS}
              for fmt, suffix in (("parquet", "parquet"), ("json", "jsonl"))}
    # the format is the one that holds the test split; parquet first, as on the hub
    fmt = next((f for f in ("parquet", "json") if by_fmt[f]["test"]), None)
    if fmt is None:
        raise MMLUDataError(f"MMLU subject {subject!r}: no test file in {folder}; expected "
                            f"{folder / 'test-00000-of-00001.parquet'} or {folder / 'test.jsonl'} "
                            f"({_EXPECTED.format(split='test')})")
    files, sizes = {}, {}
    for split in SPLITS:
        paths = by_fmt[fmt][split]
        if not paths:
            if split in _REQUIRED_SPLITS:
                suffix = "-00000-of-00001.parquet" if fmt == "parquet" else ".jsonl"
                raise MMLUDataError(
                    f"MMLU subject {subject!r}: missing {folder / (split + suffix)} (the {split} split is required: "
                    f"{'few-shot examples' if split == 'dev' else 'the questions scored'}); "
                    f"expected {_EXPECTED.format(split=split)}")
            continue
        sizes[split] = sum(_validate_file(p, subject) for p in paths)
        if sizes[split] == 0 and split in _REQUIRED_SPLITS:
            raise MMLUDataError(f"MMLU subject {subject!r}: {paths[0]} has no rows")
        files[split] = tuple(str(p.resolve()) for p in paths)
    return SubjectFiles(subject, fmt, files, sizes)


def _validate_file(path: Path, subject: str) -> int:
    """Rows in `path` after checking every row has the columns the upstream template reads."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
            raise MMLUDataError(f"{path}: not a readable parquet file ({e}); expected {_EXPECTED.format(split='test')}")
        missing = [c for c in ("question", "choices", "answer") if c not in table.column_names]
        if missing:
            raise MMLUDataError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(table.column_names)});"
                                f" expected {_EXPECTED.format(split='test')}")
        rows = table.select(["question", "choices", "answer"]).to_pylist()
    else:
        rows = []
        with open(path) as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise MMLUDataError(f"{path}:{i}: not a JSON line ({e}); expected one object per line with "
                                        f"{_EXPECTED.format(split='test')}") from None
                if not isinstance(row, dict):
                    raise MMLUDataError(f"{path}:{i}: a JSON line must be an object; expected "
                                        f"{_EXPECTED.format(split='test')}")
                missing = [c for c in ("question", "choices", "answer") if c not in row]
                if missing:
                    raise MMLUDataError(f"{path}:{i}: missing key(s) {', '.join(missing)} (has {', '.join(row)}); "
                                        f"expected {_EXPECTED.format(split='test')}")
                rows.append(row)
    for i, row in enumerate(rows):
        q, ch, a = row["question"], row["choices"], row["answer"]
        where = f"{path}: row {i}"
        if not isinstance(q, str):
            raise MMLUDataError(f"{where}: question must be a str, got {type(q).__name__}")
        if not (isinstance(ch, list) and len(ch) == 4 and all(isinstance(c, str) for c in ch)):
            raise MMLUDataError(f"{where}: choices must be a list of 4 str, got {ch!r}")
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a <= 3:
            raise MMLUDataError(f"{where}: answer must be an int 0-3 (index into choices), got {a!r}")
    return len(rows)


# --------------------------------------------------------------------------- task configs

def write_tasks(data_dir: str | os.PathLike, task_dir: str | os.PathLike, *, prefix: str = "suite_mmlu",
                subjects: Sequence[str] | None = None) -> str:
    """Write lm-eval task YAMLs for the subjects under `data_dir` into `task_dir`; returns the parent group name.

    Files: `_<prefix>_template_yaml` (not indexed, like upstream `_default_template_yaml`), `<prefix>_<subject>.yaml`
    per subject present, `_<prefix>_<group>.yaml` per group with at least one subject, `_<prefix>.yaml` (parent).
    YAMLs of an earlier call with the same prefix are removed first, so the directory holds one consistent set.
    """
    return _write_tasks(find_subjects(data_dir, subjects), Path(task_dir), prefix)


def _write_tasks(found: Sequence[SubjectFiles], task_dir: Path, prefix: str) -> str:
    import yaml

    if not _PREFIX.match(prefix):
        raise ValueError(f"task prefix {prefix!r} must be letters, digits and '_' (starting with a letter)")
    task_dir.mkdir(parents=True, exist_ok=True)
    template = f"_{prefix}_template_yaml"
    # exactly the names this prefix can produce: other files (another prefix's tasks) stay
    ours = [template, f"_{prefix}.yaml", *(f"_{prefix}_{g}.yaml" for g in GROUPS),
            *(f"{prefix}_{s}.yaml" for s in SUBJECTS)]
    for name in ours:
        (task_dir / name).unlink(missing_ok=True)

    class Dumper(yaml.SafeDumper):
        pass

    def text_style(dumper, data: str):  # "...\n..." on one line, as upstream writes prompts, not folded blocks
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"' if "\n" in data else None)

    Dumper.add_representer(str, text_style)

    def dump(name: str, cfg: dict) -> None:
        text = yaml.dump(cfg, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=1000)
        atomic_write_text(task_dir / name, "# written by suite.eval.mmlu.write_tasks\n" + text)

    dump(template, TEMPLATE)
    present: dict[str, list[str]] = {g: [] for g in GROUPS}
    for sf in found:
        group = SUBJECTS[sf.subject]
        present[group].append(sf.subject)
        dump(f"{prefix}_{sf.subject}.yaml", {
            "include": template,
            "task": f"{prefix}_{sf.subject}",
            "task_alias": sf.subject,
            "tag": f"{prefix}_{group}_tasks",
            "description": description(sf.subject),
            "dataset_path": sf.fmt,
            "dataset_name": sf.subject,
            "dataset_kwargs": {"data_files": {s: list(p) for s, p in sf.files.items()}},
        })
    groups = [g for g in GROUPS if present[g]]
    for g in groups:
        dump(f"_{prefix}_{g}.yaml", {"group": f"{prefix}_{g}", "group_alias": GROUPS[g],
                                     "task": [f"{prefix}_{g}_tasks"],
                                     "aggregate_metric_list": GROUP_AGGREGATION, "metadata": GROUP_METADATA})
    dump(f"_{prefix}.yaml", {"group": prefix, "task": [f"{prefix}_{g}" for g in groups],
                             "aggregate_metric_list": GROUP_AGGREGATION, "metadata": GROUP_METADATA})
    return prefix


# --------------------------------------------------------------------------- evaluation

def evaluate_mmlu(model, tokenizer, data_dir: str | os.PathLike | None, *, num_fewshot: int = 0,
                  batch_size: int | str = 16, limit: int | float | None = None, device: str | None = None,
                  out_dir: str | os.PathLike | None = None, subjects: Sequence[str] | None = None,
                  task: str = "local", progress: bool = True, model_name: str | None = None) -> dict[str, Any]:
    """MMLU accuracy of an in-memory causal LM through `lm_eval.simple_evaluate`.

    `task="local"` runs the upstream configs on the files under `data_dir`; `task="upstream"` runs lm-eval's
    built-in `mmlu` (hub dataset `cais/mmlu`; `data_dir` and `subjects` must be None). `device` moves the model
    there first (in place); None keeps it where it is. `limit` caps the test questions per subject (lm-eval's
    meaning). `progress=False` silences lm-eval's own tqdm bars too. Returns overall / group / subject
    accuracies, each size-weighted over the questions scored, lm-eval's stderrs of the overall and group
    accuracies, and `choice_statistics` of the per-question samples (ties, answer distribution, chance).
    `model_name` names the lm-eval-layout copy's folder (module docstring).
    """
    import lm_eval
    from lm_eval.evaluator import simple_evaluate  # imported before _quiet_lm_eval() looks for lm_eval loggers
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    if task not in ("local", "upstream"):
        raise ValueError(f"task={task!r}: valid are 'local' (files under data_dir) and 'upstream' (lm-eval's mmlu)")
    if num_fewshot < 0:
        raise ValueError(f"num_fewshot={num_fewshot} must be >= 0")
    tok = _with_pad(tokenizer)
    started = time.perf_counter()   # lm-eval times from its tracker's creation, before the model is wrapped
    with tempfile.TemporaryDirectory(prefix="suite_mmlu_") as tmp:
        if task == "local":
            if data_dir is None:
                raise ValueError("task='local' needs data_dir (a folder in the cais/mmlu layout)")
            found = find_subjects(data_dir, subjects)
            short = min(found, key=lambda sf: sf.sizes["dev"])
            if num_fewshot > short.sizes["dev"]:
                raise ValueError(f"num_fewshot={num_fewshot} but subject {short.subject!r} has only "
                                 f"{short.sizes['dev']} dev examples ({short.files['dev'][0]})")
            task_dir = Path(out_dir) / "tasks" if out_dir is not None else Path(tmp) / "tasks"
            prefix = _write_tasks(found, task_dir, "suite_mmlu")
            manager = TaskManager(include_path=str(task_dir), include_defaults=False)
        else:
            if data_dir is not None or subjects is not None:
                raise ValueError("task='upstream' runs lm-eval's whole built-in `mmlu` from the hub: "
                                 "pass data_dir=None and subjects=None (or use task='local' for local files)")
            prefix = "mmlu"
            manager = _upstream_task_manager()
        if device is not None:
            model.to(device)
        training = model.training  # HFLM calls model.eval(); a training loop that evaluates gets its mode back
        try:
            with _quiet_lm_eval(progress):
                lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size)
                res = simple_evaluate(
                    model=lm, tasks=[prefix], num_fewshot=num_fewshot, limit=limit, task_manager=manager,
                    log_samples=True,
                    # MMLU draws no random numbers (first_n few-shot, loglikelihood scoring); None keeps lm-eval
                    # from reseeding the caller's global random / numpy / torch generators
                    random_seed=None, numpy_random_seed=None, torch_random_seed=None)
        finally:
            model.train(training)
    summary = _summarize(res, prefix, num_fewshot, task, data_dir, lm_eval.__version__)
    if out_dir is not None:
        _write_outputs(Path(out_dir), summary, res)
        name = model_name or getattr(model, "name_or_path", None) or "model"
        # simple_evaluate's own default: evaluate_mmlu does not pass it
        multiturn = getattr(inspect.signature(simple_evaluate).parameters.get("fewshot_as_multiturn"), "default",
                            None)
        write_lm_eval_layout(Path(out_dir) / "lm_eval", res, str(name), started, fewshot_as_multiturn=multiturn)
    return summary


def _upstream_task_manager():
    """A TaskManager holding lm-eval's own mmlu configs: indexing only their folder takes under 1 s, all
    14,683 shipped tasks ~13 s (0.4.13, 2 CPU cores). Falls back to the full index if the folder moved."""
    import lm_eval.tasks
    from lm_eval.tasks import TaskManager

    folder = Path(lm_eval.tasks.__file__).parent / "mmlu" / "default"
    if (folder / "_mmlu.yaml").is_file():
        return TaskManager(include_path=str(folder), include_defaults=False)
    return TaskManager()


def _summarize(res: Mapping[str, Any], prefix: str, num_fewshot: int, task: str, data_dir, version: str) -> dict:
    results, n_samples = res["results"], res["n-samples"]
    group_names = {f"{prefix}_{g}": g for g in GROUPS}
    subject_names = {f"{prefix}_{s}": s for s in SUBJECTS}
    subjects = {subject_names[t]: float(r["acc,none"]) for t, r in results.items() if t in subject_names}
    groups = {group_names[t]: float(r["acc,none"]) for t, r in results.items() if t in group_names}
    n_by_subject = {subject_names[t]: int(c["effective"]) for t, c in n_samples.items() if t in subject_names}
    group_stderr = {group_names[t]: _stderr(r) for t, r in results.items() if t in group_names}
    samples = [r for t, records in (res.get("samples") or {}).items() if t in subject_names for r in records]
    return {
        "benchmark": "mmlu",
        "task": task,
        "lm_eval_task": prefix,
        "data_dir": None if data_dir is None else str(Path(data_dir).expanduser().resolve()),
        "overall": float(results[prefix]["acc,none"]),
        "stderr": _stderr(results[prefix]),
        "groups": {g: groups[g] for g in GROUPS if g in groups},
        "stderr_by_group": {g: group_stderr[g] for g in GROUPS if g in groups},
        "subjects": dict(sorted(subjects.items())),
        "n": sum(n_by_subject.values()),
        "n_by_group": {g: sum(n for s, n in n_by_subject.items() if SUBJECTS[s] == g) for g in GROUPS if g in groups},
        "n_by_subject": dict(sorted(n_by_subject.items())),
        "num_fewshot": num_fewshot,
        "metric": "acc",
        "lm_eval_version": version,
        **choice_statistics(samples),
    }


def _stderr(task_result: Mapping[str, Any]) -> float | None:
    """lm-eval's `acc_stderr,none` (a fraction), None where it reports "N/A" (a subject with one question)."""
    value = task_result.get("acc_stderr,none")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


TIE_ATOL = 1e-6  # choice log-likelihoods this close (absolute, nats) count as equal


def _loglikelihood(resp: Any) -> float:
    """One choice's log-likelihood from a sample's `filtered_resps` entry: (loglik, is_greedy) or a number."""
    return float(resp[0]) if isinstance(resp, (list, tuple)) else float(resp)


def choice_statistics(samples: Sequence[Mapping[str, Any]], atol: float = TIE_ATOL) -> dict[str, Any]:
    """Facts that flag a degenerate MMLU score, from lm-eval's per-question sample records.

    Each record (lm-eval's `samples[task][i]`) holds `filtered_resps`: one (log-likelihood, is_greedy) per choice
    (lists after a JSON round trip); records of a filter other than "none" are skipped. Returns
    `tied_fraction` (fraction 0-1 of questions whose choice log-likelihoods all lie within `atol` of each other:
    a tokenizer that maps the letters to one unknown token scores every choice the same, and lm-eval's argmax
    then always picks A), `n_tied`; over the predicted letters (argmax of the log-likelihoods, first on ties,
    as lm-eval's `acc`): `answer_entropy` (bits), `top_answer`, `top_answer_share` (0-1), `answer_counts`; and
    `chance`, the expected accuracy of a uniform random guess (mean of 1/number of choices: 0.25 on MMLU), a
    fraction like `overall`. All None without samples.
    """
    import numpy as np

    tied, letters, inverse = 0, [], []
    for rec in samples:
        if rec.get("filter", "none") != "none":
            continue
        lls = np.array([_loglikelihood(r) for r in rec["filtered_resps"]], dtype=np.float64)
        if lls.size == 0:
            continue
        tied += bool(lls.max() - lls.min() <= atol)
        letters.append(chr(ord("A") + int(np.argmax(lls))))
        inverse.append(1.0 / lls.size)
    n = len(letters)
    dist = answer_distribution(letters)
    return {"tied_fraction": tied / n if n else None, "n_tied": tied if n else None,
            "answer_entropy": dist["entropy_bits"], "top_answer": dist["top"], "top_answer_share": dist["top_share"],
            "answer_counts": dist["counts"] if n else None, "chance": float(np.mean(inverse)) if n else None}


def _write_outputs(out_dir: Path, summary: dict, res: Mapping[str, Any]) -> None:
    kept = ("results", "groups", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better",
            "n-samples", "config", "date", "lm_eval_version", "transformers_version")
    lm_eval_part = {k: res[k] for k in kept if k in res}
    # round-trip through JSON with str() for anything lm-eval keeps that JSON cannot hold (dtypes, functions)
    atomic_write_json(out_dir / "results.json",
                      {**summary, "lm_eval": json.loads(json.dumps(lm_eval_part, default=_jsonable))})
    for name, records in (res.get("samples") or {}).items():
        text = "".join(json.dumps(r, default=_jsonable, ensure_ascii=False) + "\n" for r in records)
        atomic_write_text(out_dir / f"samples_{name}.jsonl", text)


def sanitize_model_name(name: str) -> str:
    """lm-eval's folder name for a model: each run of " < > : / | \\ ? * [ ] becomes "__" ("org/m" -> "org__m")."""
    return re.sub(r'["<>:/|\\?*\[\]]+', "__", name)


def write_lm_eval_layout(output_path: str | os.PathLike, res: Mapping[str, Any], model_name: str,
                         started: float | None = None, *, model_source: str = "hf",
                         fewshot_as_multiturn: bool | None = False) -> Path:
    """Write `simple_evaluate`'s `res` (with its `samples`) as `lm_eval --output_path OUTPUT_PATH --log_samples`
    does: OUTPUT_PATH/<model>/results_<date>.json and samples_<task>_<date>.jsonl per leaf task (`configs`).
    `started`: time.perf_counter() when the evaluation began. Returns the results file. `res` is not changed.

    The results file is `res` without `samples`, plus `task_hashes` (per task, sha256 over its samples'
    doc_hash + prompt_hash + target_hash, in order) and the run's facts lm-eval records beside them (model
    source and name, system instruction, chat template, multiturn few-shot, total seconds as a string). A
    sample line is the record with `arguments` as {"gen_args_<i>": {"arg_<j>": ...}}, `resps` and
    `filtered_resps` with every leaf as text, and `target` as text: the form `datasets` loads."""
    samples = res.get("samples") or {}
    task_hashes = {task: hashlib.sha256("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"]
                                                for s in records).encode("utf-8")).hexdigest()
                   for task, records in samples.items()} if samples else {}
    results = {k: v for k, v in res.items() if k != "samples"}
    results.update({
        "task_hashes": task_hashes, "model_source": model_source, "model_name": model_name,
        "model_name_sanitized": sanitize_model_name(model_name), "system_instruction": None,
        "system_instruction_sha": None, "fewshot_as_multiturn": fewshot_as_multiturn, "chat_template": None,
        "chat_template_sha": None,
        "total_evaluation_time_seconds": None if started is None else str(time.perf_counter() - started),
    })
    folder = Path(output_path) / sanitize_model_name(model_name)
    date_id = datetime.now().isoformat().replace(":", "-")
    path = atomic_write_text(folder / f"results_{date_id}.json",
                             json.dumps(results, indent=2, default=_jsonable, ensure_ascii=False))
    for task in res.get("configs") or {}:
        if task not in samples:
            continue
        text = "".join(json.dumps(_lm_eval_sample(r), default=_jsonable, ensure_ascii=False) + "\n"
                       for r in samples[task])
        atomic_write_text(folder / f"samples_{task}_{date_id}.jsonl", text)
    return path


def _as_text(x: Any) -> Any:
    """Every leaf of nested lists / tuples as str (a response's (log-likelihood, is_greedy) -> ["-1.2", "False"])."""
    return type(x)(_as_text(v) for v in x) if isinstance(x, (list, tuple)) else str(x)


def _lm_eval_sample(rec: Mapping[str, Any]) -> dict:
    out = dict(rec)
    out["arguments"] = {f"gen_args_{i}": {f"arg_{j}": a for j, a in enumerate(args)}
                        for i, args in enumerate(rec["arguments"])}
    out["resps"], out["filtered_resps"] = _as_text(rec["resps"]), _as_text(rec["filtered_resps"])
    out["target"] = str(rec["target"])
    return out


def _jsonable(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover - numpy comes with torch
        pass
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def _with_pad(tokenizer):
    """The tokenizer, or a copy with pad = eos (else unk, else id 0) when it has no pad token.

    HFLM would otherwise set one on the caller's tokenizer, or add a new `<|pad|>` token whose id the model's
    embedding does not have. Pad positions never reach a loglikelihood, so any existing id is correct.
    """
    if tokenizer is None:
        raise ValueError("pass the tokenizer: without one HFLM looks the model's name up on the hub")
    if getattr(tokenizer, "pad_token_id", None) is not None:
        return tokenizer
    import copy

    tok = copy.deepcopy(tokenizer)
    if tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    elif tok.unk_token is not None:
        tok.pad_token = tok.unk_token
    else:
        tok.pad_token = tok.convert_ids_to_tokens(0)
    return tok


# lm-eval says these on every run with an in-memory model, and once per subject task (57 times) for few-shot
_NOISE = ("`pretrained` model kwarg is not of type", "Passed an already-initialized model",
          "Overwriting default num_fewshot", "num_fewshot has been set to 0")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(n in msg for n in _NOISE)


def _silenced(bar: type):
    """An __init__ for a subclass of `bar` that is always disabled (lm-eval passes disable= itself)."""
    def __init__(self, *args, **kwargs):
        kwargs["disable"] = True
        bar.__init__(self, *args, **kwargs)
    return __init__


@contextmanager
def _quiet_lm_eval(progress: bool = True) -> Iterator[None]:
    """lm-eval at WARNING without its known per-run chatter, and no `datasets` progress bars; restored after.

    `progress=False` also silences lm-eval's tqdm bars ("Running loglikelihood requests", "Building contexts"):
    lm-eval never passes `disable_tqdm` through simple_evaluate, so each lm_eval module's `tqdm` name is
    swapped for a disabled one while this runs."""
    import sys

    import datasets
    from tqdm import tqdm as _tqdm

    top = logging.getLogger("lm_eval")
    level = top.level
    top.setLevel(logging.WARNING)
    # a logger's filter sees only records made on that logger, so it goes on each lm_eval.* logger
    noise = _DropNoise()
    named = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.split(".")[0] == "lm_eval"]
    for lg in named:
        lg.addFilter(noise)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bar()
    swapped = []  # (module, its tqdm class): tqdm.std's or tqdm.auto's
    if not progress:
        for name, mod in list(sys.modules.items()):
            bar = getattr(mod, "tqdm", None) if name.split(".")[0] == "lm_eval" else None
            if isinstance(bar, type) and issubclass(bar, _tqdm):
                mod.tqdm = type("SilentTqdm", (bar,), {"__init__": _silenced(bar)})
                swapped.append((mod, bar))
    try:
        yield
    finally:
        for mod, bar in swapped:
            mod.tqdm = bar
        top.setLevel(level)
        for lg in named:
            lg.removeFilter(noise)
        if bars:
            datasets.enable_progress_bar()


# --------------------------------------------------------------------------- fixture

def write_mmlu_fixture(root: str | os.PathLike, *, subjects: Sequence[str] | None = None, n_test: int = 8,
                       n_dev: int = 5, n_validation: int = 2, fmt: str = "parquet", seed: int = 0) -> Path:
    """Synthetic MMLU files in the cais/mmlu layout: arithmetic and alphabet questions with 4 choices.

    Content is a function of (seed, subject, split, row) only, so a subject's questions are the same whichever
    other subjects are written and in either format. A split of size 0 gets no file. Returns `root`.
    """
    if fmt not in ("parquet", "jsonl"):
        raise ValueError(f"fmt={fmt!r}: valid are 'parquet' and 'jsonl'")
    root = Path(root)
    sizes = {"test": n_test, "dev": n_dev, "validation": n_validation}
    for subject in _check_subjects(subjects):
        folder = root / subject
        folder.mkdir(parents=True, exist_ok=True)
        for split, n in sizes.items():
            if n <= 0:
                continue
            rng = random.Random(f"{seed}/{subject}/{split}")  # str seeds are hashed with sha512: stable across runs
            rows = [_question(rng, subject) for _ in range(n)]
            if fmt == "jsonl":
                atomic_write_text(folder / f"{split}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
            else:
                _write_parquet(folder / f"{split}-00000-of-00001.parquet", rows)
    return root


def _write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # the hub's column types: answer is a ClassLabel, stored as int64
    schema = pa.schema([("question", pa.string()), ("subject", pa.string()),
                        ("choices", pa.list_(pa.string())), ("answer", pa.int64())])
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    os.replace(tmp, path)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _question(rng: random.Random, subject: str) -> dict:
    kind = rng.randrange(4)
    if kind == 3:
        i = rng.randrange(len(_LETTERS) - 1)
        question = f"Which letter comes right after '{_LETTERS[i]}' in the English alphabet?"
        right = _LETTERS[i + 1]
        wrong = rng.sample([c for c in _LETTERS if c != right], 3)
    else:
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        op = "+-*"[kind]
        value = a + b if op == "+" else a - b if op == "-" else a * b
        question = f"What is {a} {op} {b}?"
        right = str(value)
        offsets = rng.sample([d for d in range(-6, 7) if d != 0], 3)
        wrong = [str(value + d) for d in offsets]
    if rng.random() < 0.25:
        question += " "  # upstream questions sometimes end in whitespace; the template strips it
    choices = [right, *wrong]
    rng.shuffle(choices)
    return {"question": question, "subject": subject, "choices": choices, "answer": choices.index(right)}
