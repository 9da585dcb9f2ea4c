"""Bad input is rejected before anything runs: one table of malformed grids, cell configs, analysis specs, law
data, predictions, benchmark files and checkpoints, each through the CLI a user would type.

Every case asserts the exit code (2), that the message (one `suite...: error:` line; a YAML error adds the
parser's pointer to the line) names the file and the key (or column, or row), and that nothing was written:
the tree under the test's directory hashes the same before and after, so no run directory, sweep.json,
report, score file or queued job appeared. A bad resubmit of a finished sweep
leaves every file of its runs/ untouched.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import yaml

from suite.cli import main

TINY = {"student": "tiny-0.007M", "data": {"language": "synthetic-small", "seq_len": 16, "heldout_examples": 4},
        "train": {"tokens": 256, "batch_size": 4}}


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _yaml(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _grid(tmp: Path, cell: dict, **top) -> list[str]:
    g = _yaml(tmp / "g.yaml", {"name": "g", **top, "cells": {"a": {"set": {**TINY, **cell}}}})
    return ["sweep", "submit", str(g), "--runs", str(tmp / "runs"), "--executor", "local"]


def _grid_raw(tmp: Path, cells: dict, **top) -> list[str]:
    g = _yaml(tmp / "g.yaml", {"name": "g", **top, "cells": cells})
    return ["sweep", "submit", str(g), "--runs", str(tmp / "runs"), "--executor", "local"]


def _cell(tmp: Path, extra: dict, *flags: str) -> list[str]:
    cfg = {**TINY, **extra}
    for k in ("data", "train"):
        if k in extra:
            cfg[k] = {**TINY[k], **extra[k]}
    c = _yaml(tmp / "cell.yaml", cfg)
    return ["train", str(c), "--out", str(tmp / "run"), "--no-progress", *flags]


def _spec(tmp: Path, body: dict) -> list[str]:
    data = _yaml(tmp / "points.csv", "N,D,loss\n1e6,2e7,3.1\n2e6,4e7,2.9\n")
    s = _yaml(tmp / "spec.yaml", {"name": "x", "sweep": str(data), **body})
    return ["report", str(s), "--out", str(tmp / "report"), "--quiet"]


def _fit(tmp: Path, text: str, law: str = "supervised") -> list[str]:
    return ["fit", "--law", law, "--data", str(_yaml(tmp / "points.csv", text))]


def _dir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _results(tmp: Path) -> Path:
    rows = [{"name": f"{m}-s{s}", "method": m, "student": "x", "config.train.seed": s, "loss": 2.0 + 0.01 * s}
            for m in ("supervised", "kd") for s in range(3)]
    p = tmp / "r.csv"
    pd.DataFrame(rows).to_csv(p, index=False)
    return p


def _score(tmp: Path, name: str, content: bytes | str, *extra: str) -> list[str]:
    p = tmp / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return ["score", "--benchmark", "ai2d", "--predictions", str(p), *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny causal LM trained by `suite train` (its model/ holds config, weights and tokenizer)."""
    root = tmp_path_factory.mktemp("trained")
    cfg = _yaml(root / "cell.yaml", {"name": "m", **TINY})
    assert main(["train", str(cfg), "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run" / "model"


def _copy_model(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _broken_mmlu(tmp: Path, trained: Path) -> list[str]:
    d = tmp / "data" / "mmlu" / "anatomy"
    d.mkdir(parents=True)
    for split in ("test", "dev"):
        (d / f"{split}-00000-of-00001.parquet").write_bytes(b"PAR1 not a parquet file")
    return ["eval", "--model", str(trained), "--benchmarks", "mmlu", "--data-root", str(tmp / "data"),
            "--out", str(tmp / "eval")]


def _vlm_missing_image(tmp: Path) -> list[str]:
    from suite.eval.vlm import write_ai2d_fixture

    root = tmp / "lmu"
    write_ai2d_fixture(root, n=4, seed=0)
    tsv = next(root.glob("AI2D_TEST*.tsv"))
    df = pd.read_csv(tsv, sep="\t", dtype=str)
    df.loc[1, "image"] = "999"          # a reference to a row that does not exist: row 1 has no image
    df.to_csv(tsv, sep="\t", index=False)
    preds = df.drop(columns=["image"]).assign(prediction="A")
    preds.to_csv(tmp / "m_AI2D_TEST.tsv", sep="\t", index=False)
    return ["score", "--benchmark", "ai2d", "--predictions", str(tmp / "m_AI2D_TEST.tsv"), "--data-root", str(root),
            "--out", str(tmp / "scores")]


def _file(path: Path, text: str = "not a directory\n") -> Path:
    """A regular file where the command wants a directory (or a directory above its output)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _ai2d_predictions(tmp: Path, prediction: str | list[str] = "A") -> tuple[Path, Path]:
    """(predictions file, data root) on the 4-item AI2D fixture; `prediction` for every row or one per row."""
    from suite.eval.vlm import write_ai2d_fixture

    root = tmp / "lmu"
    write_ai2d_fixture(root, n=4, seed=0)
    df = pd.read_csv(next(root.glob("AI2D_TEST*.tsv")), sep="\t", dtype=str).drop(columns=["image"])
    p = tmp / "m_AI2D_TEST.tsv"
    df.assign(prediction=prediction).to_csv(p, sep="\t", index=False)
    return p, root


def _score_ai2d(tmp: Path, prediction: str | list[str] = "A", out: Path | None = None, *extra: str) -> list[str]:
    p, root = _ai2d_predictions(tmp, prediction)
    return ["score", "--benchmark", "ai2d", "--predictions", str(p), "--data-root", str(root),
            "--out", str(out or tmp / "scores"), *extra]


def _report_on(tmp: Path, csv: str, **body) -> list[str]:
    """`suite report` of a spec whose sweep is a results CSV written from `csv`."""
    data = _yaml(tmp / "r.csv", csv)
    s = _yaml(tmp / "spec.yaml", {"name": "x", "sweep": str(data), "tables": [], **body})
    return ["report", str(s), "--out", str(tmp / "report"), "--quiet"]


def _kd_grid(tmp: Path, **where) -> list[str]:
    """A dry-run submit of one KD cell whose student/teacher are `where`'s."""
    return [*_grid(tmp, {"method": "kd", "teacher": "tiny-0.007M", **where}), "--dry-run"]


def _checkpoint(tmp: Path, trained: Path, how: str) -> list[str]:
    m = _copy_model(trained, tmp / "ckpt")
    if how == "missing":
        (m / "model.safetensors").unlink()
    elif how == "corrupt":
        data = (m / "model.safetensors").read_bytes()
        (m / "model.safetensors").write_bytes(data[: len(data) // 3])   # truncated mid-file
    elif how == "no-config":
        (m / "config.json").unlink()
    return ["eval", "--model", str(m), "--benchmarks", "heldout", "--out", str(tmp / "eval")]


# (id, build(tmp, trained) -> argv, substrings the message must hold; "{tmp}" is the case's directory)
CASES = [
    # grids: expansion checks every field, so nothing is queued
    ("grid-tokens-word", lambda t, m: _grid(t, {"train": {"tokens": "lots"}}),
     ["g.yaml", "cells.a.train.tokens", "'lots'"]),
    ("grid-lr-negative-tokens-zero", lambda t, m: _grid(t, {"optim": {"lr": -1}, "train": {"tokens": 0}}),
     ["g.yaml", "optim.lr", "> 0"]),
    ("grid-tokens-zero", lambda t, m: _grid(t, {"train": {"tokens": 0}}), ["g.yaml", "train.tokens", "positive"]),
    ("grid-unknown-method", lambda t, m: _grid(t, {"method": "kdd"}), ["g.yaml", "method", "did you mean 'kd'"]),
    ("grid-misspelled-key", lambda t, m: _grid_raw(t, {"a": {"set": {**TINY, "trian": {}}}}),
     ["g.yaml", "'trian'", "did you mean 'train'"]),
    ("grid-kd-without-teacher", lambda t, m: _grid(t, {"method": "kd"}), ["g.yaml", "teacher", "'kd'"]),
    ("grid-unknown-teacher-group", lambda t, m: _grid(t, {"method": "kd", "teacher": "@nope"}), ["g.yaml", "nope"]),
    ("grid-broken-yaml", lambda t, m: ["sweep", "submit", str(_yaml(t / "g.yaml", "name: g\ncells: {a: [")),
                                       "--runs", str(t / "runs")], ["g.yaml", "not valid YAML"]),
    ("grid-replay-method-without-replay", lambda t, m: _grid(
        t, {"method": "replay", "continual": {"tasks": "synthetic-5", "stage": 1, "replay": 0}}),
     ["g.yaml", "continual.replay", "seq-ft"]),
    ("grid-gpus-on-local", lambda t, m: _grid(t, {}, resources={"gpus_per_node": 1}),
     ["g.yaml", "resources.gpus_per_node", "local executor"]),
    ("grid-two-nodes-on-local", lambda t, m: _grid(t, {}, resources={"nodes": 2}),
     ["g.yaml", "resources.nodes", "--executor slurm"]),
    ("grid-negative-memory", lambda t, m: _grid(t, {}, resources={"mem_gb": -1}), ["g.yaml", "resources.mem_gb"]),
    ("grid-schedule-typo", lambda t, m: _grid(t, {"optim": {"schedule": "cosin"}}),
     ["g.yaml", "optim.schedule", "did you mean 'cosine'"]),
    ("grid-warmup-beyond-run", lambda t, m: _grid(t, {"optim": {"warmup_tokens": "1M"}}),
     ["g.yaml", "optim.warmup_tokens", "within the run"]),
    ("grid-warmup-steps-beyond-run", lambda t, m: _grid(t, {"optim": {"warmup": 100}}),
     ["g.yaml", "optim.warmup", "within the run"]),
    ("grid-unknown-axis", lambda t, m: _grid_raw(t, {"a": {"axes": {"train.tokenz": [1, 2]}, "set": TINY}}),
     ["g.yaml", "train.tokenz", "train.tokens"]),
    ("grid-kd-weight-above-1", lambda t, m: _grid(
        t, {"method": {"name": "kd", "kd_weight": 1.5}, "teacher": "tiny-0.007M"}), ["g.yaml", "kd_weight"]),
    ("grid-unknown-benchmark", lambda t, m: _grid(t, {"eval": {"benchmarks": ["mmlux"]}}),
     ["g.yaml", "eval.benchmarks", "'mmlu'"]),
    ("grid-beta2-one", lambda t, m: _grid(t, {"optim": {"beta2": 1.0}}), ["g.yaml", "optim.beta2", "[0, 1)"]),
    ("grid-tiny-name-typo", lambda t, m: _grid(t, {"student": "tiny-0.07M"}),
     ["g.yaml", "cells.a.student", "did you mean 'tiny-0.007M'"]),
    ("grid-teacher-other-vocabulary", lambda t, m: _grid_raw(t, {
        "t": {"set": {**TINY, "data": {**TINY["data"], "language": "facts-small"}}},
        "s": {"set": {**TINY, "method": "kd", "teacher": "@t"}}}),
     ["g.yaml", "cells.s.teacher", "'@t'", "vocabularies differ"]),
    # cell configs: `suite train` checks before it creates the run directory
    ("cell-teacher-name-typo", lambda t, m: _cell(t, {"method": "kd", "teacher": "tiny-2m"}, "--dry-run"),
     ["cell.yaml", "teacher", "did you mean 'tiny-2M'"]),
    ("cell-data-kind", lambda t, m: _cell(t, {"data": {"kind": "corpuz"}}),
     ["cell.yaml", "data.kind", "synthetic, corpus"]),
    ("cell-batch-zero-by-set", lambda t, m: [*_cell(t, {}), "--set", "train.batch_size=0"],
     ["cell.yaml", "train.batch_size", ">= 1"]),
    ("cell-micro-batch-too-big", lambda t, m: _cell(t, {"train": {"micro_batch_size": 64}}),
     ["cell.yaml", "train.micro_batch_size"]),
    ("cell-kd-without-teacher", lambda t, m: _cell(t, {"method": "kd"}), ["cell.yaml", "teacher"]),
    ("cell-seq-len-one", lambda t, m: _cell(t, {"data": {"seq_len": 1}}), ["cell.yaml", "data.seq_len", ">= 2"]),
    ("cell-dry-run-negative-lr", lambda t, m: _cell(t, {"optim": {"lr": -1}}, "--dry-run"),
     ["cell.yaml", "optim.lr"]),
    # analysis specs
    ("spec-unknown-law", lambda t, m: _spec(t, {"laws": {"s": {"law": "supervisd"}}}),
     ["spec.yaml", "laws.s.law", "did you mean 'supervised'"]),
    ("spec-unknown-figure", lambda t, m: _spec(t, {"figures": ["isoflp"]}),
     ["spec.yaml", "figures", "did you mean 'isoflop'"]),
    ("spec-no-sweep", lambda t, m: ["report", str(_yaml(t / "spec.yaml", {"name": "x"})), "--out", str(t / "r")],
     ["spec.yaml", "'sweep'"]),
    ("spec-distillation-without-supervised", lambda t, m: _spec(t, {"laws": {"d": {"law": "distillation"}}}),
     ["spec.yaml", "laws.d.supervised"]),
    # law data files
    ("fit-missing-loss", lambda t, m: _fit(t, "N,D\n1e6,2e7\n2e6,4e7\n"), ["points.csv", "loss"]),
    ("fit-negative-loss", lambda t, m: _fit(t, "N,D,loss\n1e6,2e7,-1\n2e6,4e7,2.9\n"), ["points.csv", "loss"]),
    ("fit-empty-file", lambda t, m: _fit(t, ""), ["points.csv", "cannot be read"]),
    ("fit-non-numeric-loss", lambda t, m: _fit(t, "N,D,loss\n1e6,2e7,abc\n2e6,4e7,2.9\n"),
     ["points.csv", "'loss'", "row 0 is 'abc'"]),
    # predictions files
    ("score-missing-prediction", lambda t, m: _score(t, "m_AI2D_TEST.tsv", "index\tanswer\n0\tA\n"),
     ["m_AI2D_TEST.tsv", "'prediction'"]),
    ("score-truncated-xlsx", lambda t, m: _score(t, "m_AI2D_TEST.xlsx", b"PK\x03\x04 truncated"),
     ["m_AI2D_TEST.xlsx", "cannot be read as xlsx"]),
    # benchmark data
    ("mmlu-broken-parquet", lambda t, m: _broken_mmlu(t, m), ["test-00000-of-00001.parquet", "parquet"]),
    ("vlm-tsv-missing-image", lambda t, m: _vlm_missing_image(t), ["AI2D_TEST", "row index 1", "999"]),
    # duplicate keys: PyYAML keeps the last one silently; ours names the key and both lines
    ("grid-duplicate-group", lambda t, m: ["sweep", "submit", str(_yaml(t / "g.yaml", (
        "name: g\ncells:\n  a: {set: {student: tiny-0.007M}}\n  a: {set: {student: tiny-0.1M}}\n"))),
        "--runs", str(t / "runs")], ["g.yaml", "key 'a' given twice", "line 3", "line 4"]),
    ("cell-duplicate-section", lambda t, m: ["train", str(_yaml(t / "cell.yaml", (
        "student: tiny-0.007M\ntrain: {tokens: 256}\ntrain: {tokens: 512}\n"))), "--out", str(t / "run")],
     ["cell.yaml", "key 'train' given twice"]),
    ("spec-duplicate-key", lambda t, m: ["report", str(_yaml(t / "spec.yaml", (
        "name: x\nsweep: runs/x\nname: y\n"))), "--out", str(t / "report")], ["spec.yaml", "key 'name' given twice"]),
    ("set-malformed-yaml", lambda t, m: _cell(t, {}, "--set", "train={tokens: 1M"),
     ["--set", "train={tokens: 1M", "not valid YAML"]),
    # values that should never run
    ("cell-empty-file", lambda t, m: ["train", str(_yaml(t / "cell.yaml", "")), "--out", str(t / "run")],
     ["cell.yaml", "empty", "student"]),
    ("cell-nan-temperature", lambda t, m: ["train", str(_yaml(t / "cell.yaml", (
        "student: tiny-0.007M\nteacher: tiny-0.007M\nmethod: {name: kd, temperature: .nan}\n"))),
        "--out", str(t / "run")], ["cell.yaml", "method.temperature", "NaN or infinite"]),
    ("grid-infinite-lr", lambda t, m: _grid(t, {"optim": {"lr": float("inf")}}),
     ["g.yaml", "optim.lr", "NaN or infinite"]),
    ("grid-absurd-budget", lambda t, m: _grid(t, {"train": {"tokens": 10 ** 18}}),
     ["g.yaml", "train.tokens", "1e+15"]),
    ("grid-name-escapes-runs", lambda t, m: _grid(t, {}, name=".."), ["g.yaml", "name", "'..'", "inside the runs"]),
    # paths that are not files, files that are not text, and a collect before anything ran
    ("grid-is-a-directory", lambda t, m: ["sweep", "submit", str(_dir(t / "g.yaml")), "--runs", str(t / "runs")],
     ["g.yaml", "not a sweep directory", "grid YAML"]),
    ("cell-is-a-directory", lambda t, m: ["train", str(_dir(t / "cell.yaml")), "--out", str(t / "run")],
     ["cell.yaml", "is a directory"]),
    ("spec-is-a-directory", lambda t, m: ["report", str(_dir(t / "spec.yaml")), "--out", str(t / "report")],
     ["spec.yaml", "is a directory"]),
    ("grid-not-text", lambda t, m: ["sweep", "submit", str(_bytes(t / "g.yaml", b"\xff\xfe\x00\x01")),
                                    "--runs", str(t / "runs")], ["g.yaml", "cannot be read"]),
    ("collect-before-anything-ran", lambda t, m: ["sweep", "collect", _grid(t, {})[2], "--runs", str(t / "runs")],
     ["runs", "nothing has run", "'g'"]),
    # suite compare: the file and the column, value or query at fault
    ("compare-missing-metric", lambda t, m: ["compare", str(_results(t)), "--metric", "los", "--baseline",
                                             "method=supervised"], ["r.csv", "'los'", "did you mean 'loss'"]),
    ("compare-unknown-baseline", lambda t, m: ["compare", str(_results(t)), "--metric", "loss", "--baseline",
                                               "method=supervsed"], ["r.csv", "method", "did you mean 'supervised'"]),
    ("compare-baseline-not-column-value", lambda t, m: ["compare", str(_results(t)), "--metric", "loss",
                                                        "--baseline", "supervised"], ["baseline", "COLUMN=VALUE"]),
    ("compare-bad-where", lambda t, m: ["compare", str(_results(t)), "--metric", "loss", "--baseline",
                                        "method=supervised", "--where", "method ==="], ["where", "method ==="]),
    ("compare-no-such-file", lambda t, m: ["compare", str(t / "nope.parquet"), "--metric", "loss", "--baseline",
                                           "method=supervised"], ["nope.parquet"]),
    ("compare-by-missing-column", lambda t, m: ["compare", str(_results(t)), "--metric", "loss", "--baseline",
                                                "method=supervised", "--by", "studnet"],
     ["r.csv", "by column 'studnet'", "did you mean 'student'"]),
    ("spec-comparison-unknown-key", lambda t, m: _spec(t, {"tables": ["comparison"], "comparison": [
        {"metric": "loss", "baseline": "method=supervised", "bye": ["N"]}]}),
     ["spec.yaml", "comparison[0].bye", "did you mean 'by'"]),
    ("spec-comparison-without-table", lambda t, m: _spec(t, {"comparison": [
        {"metric": "loss", "baseline": "method=supervised"}]}), ["spec.yaml", "'comparison' is not under tables"]),
    # checkpoints
    ("checkpoint-missing-weights", lambda t, m: _checkpoint(t, m, "missing"), ["ckpt", "no weights"]),
    ("checkpoint-truncated-safetensors", lambda t, m: _checkpoint(t, m, "corrupt"),
     ["model.safetensors", "cannot be read"]),
    ("checkpoint-no-config", lambda t, m: _checkpoint(t, m, "no-config"), ["ckpt", "config.json"]),
    # outputs that can never be written: checked before anything runs (a file where a directory goes, a
    # directory where a file goes, a path under a regular file)
    ("train-out-is-a-file", lambda t, m: [*_cell(t, {})[:2], "--out", str(_file(t / "run")), "--no-progress"],
     ["--out", "run", "exists and is a file, not a directory"]),
    ("train-out-under-a-file", lambda t, m: [*_cell(t, {})[:2], "--out", str(_file(t / "f") / "run")],
     ["--out", "f/run", "f is a file, not a directory"]),
    ("submit-runs-is-a-file", lambda t, m: [*_grid(t, {})[:3], "--runs", str(_file(t / "runs"))],
     ["--runs", "runs", "exists and is a file"]),
    ("report-out-is-a-file", lambda t, m: [*_spec(t, {})[:2], "--out", str(_file(t / "report"))],
     ["--out", "report", "exists and is a file"]),
    ("report-out-under-a-file", lambda t, m: [*_spec(t, {})[:2], "--out", str(_file(t / "f") / "report")],
     ["--out", "f is a file, not a directory"]),
    ("fit-out-is-a-directory", lambda t, m: [*_fit(t, "N,D,loss\n1e6,2e7,3.1\n"), "--out", str(_dir(t / "fit"))],
     ["--out", "fit", "is a directory; expected a file path"]),
    ("score-out-is-a-file", lambda t, m: _score_ai2d(t, out=_file(t / "scores")),
     ["--out", "scores", "exists and is a file"]),
    ("eval-out-is-a-file", lambda t, m: ["eval", "--model", str(m), "--benchmarks", "heldout", "--out",
                                         str(_file(t / "eval"))], ["--out", "eval", "exists and is a file"]),
    # inputs that are directories where a file is read
    ("score-predictions-is-a-directory", lambda t, m: ["score", "--benchmark", "ai2d", "--predictions",
                                                       str(_dir(t / "m_AI2D_TEST.tsv"))],
     ["m_AI2D_TEST.tsv", "is a directory, not a predictions file"]),
    ("fit-data-directory-without-results", lambda t, m: ["fit", "--law", "supervised", "--data", str(_dir(t / "pts"))],
     ["pts", "without results.parquet"]),
    ("compare-input-directory-without-results", lambda t, m: ["compare", str(_dir(t / "r.csv")), "--metric", "loss",
                                                              "--baseline", "method=supervised"],
     ["r.csv", "without results.parquet"]),
    ("spec-sweep-directory-without-results", lambda t, m: ["report", str(_yaml(t / "spec.yaml", {
        "name": "x", "sweep": str(_dir(t / "runs" / "x"))})), "--out", str(t / "report")],
     ["spec.yaml", "sweep", "without results.parquet", "suite sweep collect"]),
    # report: a table or figure reading a column the results lack (the spec, the table, the column, the columns)
    ("spec-table-missing-column", lambda t, m: _report_on(t, "method,N_S,D_S\nsupervised,1e6,2e7\n",
                                                          tables=["results"]),
     ["spec.yaml", "tables: results", "column 'loss'", "r.csv", "columns: method, N_S, D_S"]),
    ("spec-figure-missing-column", lambda t, m: _report_on(t, "N_S,D_S,loss\n1e6,2e7,3.1\n2e6,4e7,2.9\n",
                                                           figures=["method_bars"]),
     ["spec.yaml", "figures: method_bars", "column 'method'", "columns: N_S, D_S, loss"]),
    ("spec-results-flag-missing-column", lambda t, m: [*_report_on(t, "method,N_S,D_S\nsupervised,1e6,2e7\n"),
                                                       "--results", str(_yaml(t / "other.csv", "method,D_S,loss\n"
                                                                              "supervised,2e7,3.1\n"))],
     ["spec.yaml", "results table", "column 'N_S'", "other.csv"]),
    # predictions that are all empty: the model did not run (some empty: scored, with a warning)
    ("score-all-predictions-empty", lambda t, m: _score_ai2d(t, ""),
     ["m_AI2D_TEST.tsv", "all 4 predictions", "'prediction'", "empty", "--allow-empty"]),
    # model paths that do not exist: refused by --dry-run as by a real submit, before anything is written
    ("grid-teacher-path-missing", lambda t, m: _kd_grid(t, teacher="./no-such-teacher/model"),
     ["g.yaml", "cells.a.teacher", "'./no-such-teacher/model'", "no such directory"]),
    ("grid-teacher-absolute-path-missing", lambda t, m: _kd_grid(t, teacher=str(t / "teachers" / "big")),
     ["g.yaml", "cells.a.teacher", "no such directory", "no 'teachers' in"]),
    ("grid-teacher-not-a-checkpoint", lambda t, m: _kd_grid(t, teacher=str(_dir(t / "teacher"))),
     ["g.yaml", "cells.a.teacher", "no config.json"]),
    ("grid-teacher-bare-word", lambda t, m: _kd_grid(t, teacher="bigteacher"),
     ["g.yaml", "cells.a.teacher", "'bigteacher'", "Hugging Face id (org/name"]),
    ("grid-teacher-hub-id-offline", lambda t, m: _kd_grid(t, teacher="no-such-org/no-such-model"),
     ["g.yaml", "cells.a.teacher", "not in the local Hugging Face cache", "HF_HUB_OFFLINE=1"]),
    ("grid-student-path-missing", lambda t, m: [*_grid(t, {"student": "../no-such-student/model"}), "--dry-run"],
     ["g.yaml", "cells.a.student", "no such directory"]),
    ("grid-teacher-missing-real-submit", lambda t, m: _grid(t, {"method": "kd", "teacher": str(t / "nope")}),
     ["g.yaml", "cells.a.teacher", "no such directory"]),
    ("cell-teacher-path-missing", lambda t, m: _cell(t, {"method": "kd", "teacher": str(t / "nope")}, "--dry-run"),
     ["cell.yaml", "teacher", "no such directory"]),
    # more malformed grids, sweeps, overrides and comparisons
    ("grid-top-level-list", lambda t, m: ["sweep", "submit", str(_yaml(t / "g.yaml", "- a: 1\n- b: 2\n")),
                                          "--runs", str(t / "runs")], ["g.yaml", "mapping at the top level", "list"]),
    ("grid-cells-empty", lambda t, m: _grid_raw(t, {}), ["g.yaml", "cells", "no cells"]),
    ("grid-include-missing", lambda t, m: _grid(t, {}, include=["base.yaml"]),
     ["base.yaml", "no such grid file", "included from", "g.yaml"]),
    ("grid-teacher-cycle", lambda t, m: _grid_raw(t, {"t": {"set": {**TINY, "method": "kd", "teacher": "@s"}},
                                                      "s": {"set": {**TINY, "method": "kd", "teacher": "@t"}}}),
     ["g.yaml", "cycle", "s -> t -> s"]),
    ("status-not-a-sweep-directory", lambda t, m: ["sweep", "status", str(_dir(t / "runs" / "g"))],
     ["runs/g", "not a sweep directory", "sweep.json"]),
    ("status-corrupt-sweep-json", lambda t, m: ["sweep", "status", str(_yaml(t / "runs" / "g" / "sweep.json",
                                                                             "{not json").parent)],
     ["sweep.json", "not JSON"]),
    ("collect-misspelled-grid", lambda t, m: ["sweep", "collect", str(t / "gird.yaml"), "--runs", str(t / "runs")],
     ["gird.yaml", "no such grid file or sweep directory"]),
    ("set-unknown-dotted-key", lambda t, m: [*_cell(t, {}), "--set", "train.tokenz=2M"],
     ["cell.yaml", "train", "'tokenz'", "did you mean 'tokens'", "(from --set train.tokenz=2M)"]),
    ("set-into-a-scalar", lambda t, m: [*_cell(t, {}), "--set", "student.size=2M"],
     ["--set", "'student'", "not a mapping"]),
    ("compare-metric-not-numeric", lambda t, m: ["compare", str(_results(t)), "--metric", "student", "--baseline",
                                                 "method=supervised"],
     ["r.csv", "metric 'student'", "not a numeric column", "'x'"]),
    ("compare-where-leaves-no-rows", lambda t, m: ["compare", str(_results(t)), "--metric", "loss", "--baseline",
                                                   "method=supervised", "--where", "method == 'kdd'"],
     ["r.csv", "no rows", "method == 'kdd'"]),
    ("compare-header-only", lambda t, m: ["compare", str(_yaml(t / "r.csv", "name,method,loss\n")), "--metric",
                                          "loss", "--baseline", "method=supervised"], ["r.csv", "no rows"]),
]

# cases that need an environment variable (names the hub cache under the case's directory, never created)
ENV = {"grid-teacher-hub-id-offline": {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": "{tmp}/hf-cache"}}


@pytest.mark.parametrize("case,build,expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_rejected_naming_file_and_key(case, build, expected, tmp_path, trained, capsys,
                                                         monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)  # the same verdict on a GPU machine
    for k, v in ENV.get(case, {}).items():
        monkeypatch.setenv(k, v.format(tmp=tmp_path))
    argv = build(tmp_path, trained)
    capsys.readouterr()
    before = _tree(tmp_path)
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, f"{case}: exit {rc}, stderr: {err}"
    assert err.startswith("suite") and ": error: " in err.splitlines()[0] and "Traceback" not in err, err
    for s in expected:
        assert s in err, f"{case}: {s!r} not in: {err}"
    assert _tree(tmp_path) == before, f"{case}: files were written or changed"


def test_at_least_30_cases():
    assert len(CASES) >= 83
    assert len({c[0] for c in CASES}) == len(CASES), "case ids repeat"
    assert set(ENV) <= {c[0] for c in CASES}


def _denied_under(monkeypatch, locked: Path) -> None:
    """Directories under `locked` cannot be made: PermissionError, as for a directory the user may not write
    (chmod does not stop root, and the tests run as root in CI)."""
    import errno
    import os

    real = os.mkdir

    def mkdir(path, mode=0o777, *a, **kw):
        if Path(os.fsdecode(path)).resolve().is_relative_to(locked.resolve()):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
        return real(path, mode, *a, **kw)

    monkeypatch.setattr(os, "mkdir", mkdir)


@pytest.mark.parametrize("what", ["train", "report", "sweep", "score"])
def test_permission_denied_output_is_one_line(what, tmp_path, capsys, monkeypatch):
    """An output directory the user may not write: exit 2, one line naming the path, nothing written."""
    locked = _dir(tmp_path / "locked")
    argv = {"train": lambda: [*_cell(tmp_path, {})[:2], "--out", str(locked / "run"), "--no-progress"],
            "report": lambda: ["report", str(_yaml(tmp_path / "spec.yaml", {
                "name": "x", "sweep": str(Path(__file__).parents[1] / "reports/quickstart/results.parquet"),
                "tables": ["results"]})), "--out", str(locked / "report"), "--quiet"],
            "sweep": lambda: [*_grid(tmp_path, {})[:3], "--runs", str(locked / "runs"), "--executor", "inline",
                              "--no-progress"],
            "score": lambda: _score_ai2d(tmp_path, out=locked / "scores")}[what]()
    before = _tree(tmp_path)
    _denied_under(monkeypatch, locked)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("suite") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(locked) in err and "Permission denied" in err and "owner and mode" in err, err
    assert _tree(tmp_path) == before


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root writes through chmod 0500")
def test_permission_denied_by_the_file_system(tmp_path, capsys):
    """The same without a fake: a real read-only directory (skipped as root, where the mode does not bind)."""
    locked = _dir(tmp_path / "locked")
    locked.chmod(0o500)
    try:
        assert main([*_cell(tmp_path, {})[:2], "--out", str(locked / "run"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("suite: error:") and "locked" in err and "Permission denied" in err, err
    finally:
        locked.chmod(0o700)


def test_os_errors_name_the_path_a_user_gave():
    """The handler's line: a rename's destination (not our temp file), the file above a path that cannot exist."""
    import errno

    from suite.cli import _path_error

    e = IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp/x/.out.json.abc.tmp", None, "/tmp/x/out.json")
    assert _path_error(e) == "/tmp/x/out.json: Is a directory (a file was expected here)"
    e = PermissionError(errno.EACCES, "Permission denied", "/srv/shared/runs")
    assert _path_error(e) == "/srv/shared/runs: Permission denied (check the owner and mode of it and of its directory)"
    assert _path_error(OSError("no errno")) == "no errno"


def test_some_empty_predictions_are_scored_with_a_warning(tmp_path, capsys):
    """One empty prediction of four: scored (as a wrong answer), and stderr says how many."""
    assert main(_score_ai2d(tmp_path, ["A", "", "A", "A"])) == 0
    err = capsys.readouterr().err
    assert "suite score: warning:" in err and "1 of 4 predictions" in err and "m_AI2D_TEST.tsv" in err, err


def test_allow_empty_scores_all_empty_predictions(tmp_path, capsys):
    assert main(_score_ai2d(tmp_path, "", None, "--allow-empty", "--json")) == 0
    out = capsys.readouterr()
    assert '"overall": 0.0' in out.out and "4 of 4 predictions" in out.err


def test_hub_teacher_not_cached_is_a_warning_online(tmp_path, capsys, monkeypatch):
    """Online, a hub id missing from the cache is downloaded when the cell runs: a warning, and the plan."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    assert main(_kd_grid(tmp_path, teacher="no-such-org/no-such-model")) == 0
    err = capsys.readouterr().err
    assert "suite: warning:" in err and "cells.a.teacher" in err and "will be downloaded" in err, err


def test_hub_teacher_in_the_cache_passes_offline(tmp_path, capsys, monkeypatch):
    """A hub id whose config.json is in the local cache resolves offline: no error, no warning."""
    snap = tmp_path / "hf-cache" / "models--some-org--small" / "snapshots" / ("0" * 40)
    _yaml(snap / "config.json", "{}")
    _yaml(snap.parents[1] / "refs" / "main", "0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    assert main(_kd_grid(tmp_path, teacher="some-org/small")) == 0
    assert "warning" not in capsys.readouterr().err


def test_unused_teacher_path_is_not_checked(tmp_path, capsys):
    """A supervised cell never loads its teacher, so a stale teacher path there is no error."""
    assert main(_cell(tmp_path, {"teacher": str(tmp_path / "gone")}, "--dry-run")) == 0


def test_bad_resubmit_leaves_a_finished_sweep_untouched(tmp_path, capsys):
    """A finished sweep, then its grid edited with a bad value and resubmitted: exit 2, every file of runs/ the same."""
    argv = _grid(tmp_path, {})
    assert main([*argv[:3], "--runs", str(tmp_path / "runs"), "--executor", "inline", "--no-progress"]) == 0
    runs = tmp_path / "runs"
    before = _tree(runs)
    assert any(p.endswith("result.json") for p in before)
    raw = yaml.safe_load((tmp_path / "g.yaml").read_text())
    raw["cells"]["b"] = {"set": {**TINY, "train": {"tokens": "lots"}}}
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert main([*argv[:3], "--runs", str(runs), "--executor", "inline"]) == 2
    assert "cells.b.train.tokens" in capsys.readouterr().err
    assert _tree(runs) == before


def test_grid_axes_over_plugin_sections_expand(tmp_path):
    """Axes may name a plugin's section keys (continual.*, vlm.*): the schema asks SECTIONS for them."""
    from suite.sweep import open_sweep

    g = _yaml(tmp_path / "g.yaml", {"name": "g", "cells": {"a": {
        "axes": {"continual.replay": [10, 20]},
        "set": {**TINY, "method": "replay", "continual": {"tasks": "synthetic-5", "stage": 1}}}}})
    sw = open_sweep(g, runs=tmp_path / "runs")
    assert sorted(c.config.continual.replay for c in sw.grid.cells) == [10, 20]


def test_genrecal_stage_3_needs_no_teacher():
    """Stage 3 trains the student alone, so a stage-3 cell without `teacher:` is valid (stages 1-2 are not)."""
    from suite.config import ConfigError, config_from_dict

    base = {"student": "tiny-qwen2vl", "vlm": {"train_items": 8}}
    cfg = config_from_dict({**base, "method": {"name": "genrecal", "stage": 3}})
    assert cfg.teacher is None
    with pytest.raises(ConfigError, match="teacher"):
        config_from_dict({**base, "method": {"name": "genrecal", "stage": 1}})
