"""analysis/published/*.csv: schema, a citation and a number on every row, CIs, and agreement with suite.laws."""
import csv
import math
from pathlib import Path

import pytest

from suite.laws import PUBLISHED, published

ROOT = Path(__file__).parents[2]
PUB = ROOT / "analysis" / "published"
COLUMNS = ["source", "table", "model", "method", "teacher", "student", "quantity", "metric", "value", "ci_low",
           "ci_high", "ci_level", "notes", "citation"]
EXPECTED = ["busbridge2025_table6", "chinchilla2022_approach3", "epoch2024_table1", "genrecal_table1",
            "genrecal_table2", "genrecal_table3", "genrecal_table4", "gere_results", "vendor_benchmarks"]
FILES = sorted(PUB.glob("*.csv"))


def read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def num(s: str) -> float:
    v = float(s)
    assert math.isfinite(v), s
    return v


def test_every_expected_table_is_there():
    have = {p.stem for p in FILES}
    assert set(EXPECTED) <= have, sorted(set(EXPECTED) - have)
    readme = (PUB / "README.md").read_text()
    for p in FILES:
        assert f"`{p.name}`" in readme, f"{p.name} is not described in analysis/published/README.md"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_schema_and_rows(path):
    cols, rows = read(path)
    assert cols == COLUMNS
    assert rows, f"{path.name} has no rows"
    for i, r in enumerate(rows, start=2):
        where = f"{path.name}:{i}"
        assert None not in r and all(v is not None for v in r.values()), f"{where}: wrong number of fields"
        assert r["citation"].strip(), f"{where}: empty citation"
        assert r["source"].strip() and r["table"].strip() and r["model"].strip(), where
        assert r["quantity"].strip() and r["metric"].strip(), where
        value = num(r["value"])
        lo, hi, level = r["ci_low"].strip(), r["ci_high"].strip(), r["ci_level"].strip()
        assert bool(lo) == bool(hi), f"{where}: half an interval"
        if level:
            assert lo and 0 < num(level) < 1, f"{where}: ci_level {level!r}"
        if not lo:
            continue
        lo, hi = num(lo), num(hi)
        assert lo <= hi, f"{where}: ci_low > ci_high"
        notes = r["notes"].lower()
        if lo == hi:
            assert "degenerate" in notes, f"{where}: a degenerate CI needs a note saying it is printed that way"
        if not lo <= value <= hi:
            assert "ci" in notes and "does not contain" in notes, \
                f"{where}: {value} outside ({lo}, {hi}) and the notes do not say the source prints it so"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_unverified_numbers_are_flagged_in_notes_not_elsewhere(path):
    _, rows = read(path)
    for r in rows:
        for k in COLUMNS:
            if k not in ("notes", "citation"):
                assert "unverified" not in r[k].lower(), f"{path.name}: UNVERIFIED belongs in notes, not {k}"


def coefficient_rows(name: str, model: str) -> list[dict[str, str]]:
    _, rows = read(PUB / f"{name}.csv")
    return [r for r in rows if r["model"] == model and r["metric"] == "coefficient"]


@pytest.mark.parametrize("table,model,fit", [
    ("busbridge2025_table6", "supervised", "busbridge2025-supervised"),
    ("busbridge2025_table6", "distillation", "busbridge2025-distillation"),
    ("chinchilla2022_approach3", "chinchilla", "chinchilla"),
    ("chinchilla2022_approach3", "chinchilla-tex", "chinchilla-tex"),
    ("epoch2024_table1", "epoch2024", "epoch2024"),
])
def test_coefficients_agree_with_suite_laws(table, model, fit):
    assert fit in PUBLISHED
    pub = published(fit)
    rows = coefficient_rows(table, model)
    got = {r["quantity"]: num(r["value"]) for r in rows}
    assert len(got) == len(rows), f"{table}/{model}: a coefficient appears twice"
    assert got.keys() == pub.params.keys()
    for k, v in pub.params.items():
        assert got[k] == pytest.approx(v, rel=1e-12, abs=0), k
    ci = {r["quantity"]: (num(r["ci_low"]), num(r["ci_high"])) for r in rows if r["ci_low"]}
    assert ci.keys() == pub.ci.keys()
    for k, (lo, hi) in pub.ci.items():
        assert ci[k] == pytest.approx((lo, hi), rel=1e-12, abs=0), k
    levels = {r["ci_level"] for r in rows if r["ci_low"]}
    if pub.ci_level is None:
        assert not levels
    else:
        assert {num(x) for x in levels} == {pub.ci_level}
    assert all(r["citation"] for r in rows)


def test_busbridge_run_counts_match_suite_laws():
    _, rows = read(PUB / "busbridge2025_table6.csv")
    runs = {r["model"]: int(num(r["value"])) for r in rows if r["metric"] == "n_runs"}
    assert runs == {"supervised": published("busbridge2025-supervised").n_points,
                    "distillation": published("busbridge2025-distillation").n_points}


def scores(name: str) -> dict[tuple[str, str], float]:
    _, rows = read(PUB / f"{name}.csv")
    out = {}
    for r in rows:
        key = (r["model"], r["quantity"])
        assert key not in out, f"{name}: {key} twice"
        out[key] = num(r["value"])
    return out


def test_genrecal_tables_agree_with_each_other():
    """Tab. 3's base and Reg rows and Tab. 4's baselines repeat Tab. 1's numbers (a check on transcription)."""
    t1, t3, t4 = scores("genrecal_table1"), scores("genrecal_table3"), scores("genrecal_table4")
    bench = ("mmbench", "mathvista", "mmvet", "mmmu")
    for size in ("8B", "4B", "2B", "1B"):
        for q in bench:
            assert t3[(f"{size} base", q)] == t1[(f"InternVL2.5-{size}", q)]
            assert t3[(f"{size} Reg", q)] == t1[(f"InternVL2.5-{size}-GenRecal", q)]
    for student in ("Qwen2-VL-7B", "Qwen2-VL-2B"):
        for q in bench:
            assert t4[(f"{student} (baseline)", q)] == t1[(student, q)]
    t2 = scores("genrecal_table2")
    for q in ("mmbench", "mmvet", "mmmu", "mmmu-pro", "ai2d", "chartqa", "seed-2-plus", "mathvista", "blink", "rwqa"):
        assert t2[("8B-GenRecal (InternVL2.5-78B)", q)] == t1[("InternVL2.5-8B-GenRecal", q)]


def test_gere_f1_is_the_harmonic_mean_of_mmlu_and_ap():
    _, rows = read(PUB / "gere_results.csv")
    by = {}
    for r in rows:
        by.setdefault(r["model"], {})[r["quantity"]] = num(r["value"])
    checked = 0
    for model, q in by.items():
        if {"mmlu", "ap", "f1-avg"} <= q.keys():
            assert q["f1-avg"] == pytest.approx(2 * q["mmlu"] * q["ap"] / (q["mmlu"] + q["ap"]), abs=1e-3), model
            checked += 1
    assert checked == 2
