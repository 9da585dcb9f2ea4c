"""`suite demo`: the quickstart. Trains the teacher, then students of several sizes with `supervised`
and with `kd` from that teacher, all on the synthetic language, and prints their held-out losses.

    suite demo                          # ~4 minutes on 2 CPU cores; results under runs/quickstart/
    suite demo --students tiny-0.1M,tiny-1M --tokens 400k
Cells whose result.json exists are skipped, so running it again resumes.
"""
from __future__ import annotations

import json
from pathlib import Path

from .config import load_config

QUICKSTART_TEACHER = "configs/quickstart.yaml"
QUICKSTART_STUDENT = "configs/quickstart-student.yaml"


def _find(path: str) -> Path:
    """A config path relative to the working directory, else to the repository this package lives in."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    return Path(__file__).resolve().parent.parent / p


def _run(cfg, out: Path, progress: bool) -> dict:
    from .train import train

    done = out / "result.json"
    if done.exists():
        res = json.loads(done.read_text())
        if res.get("cell_id") == cfg.cell_id:
            print(f"  {cfg.name}: done already ({out})")
            return res
    return train(cfg, out, progress=progress)


def demo(root: str | Path = "runs/quickstart", students=("tiny-0.1M", "tiny-0.5M", "tiny-1M"), tokens=("200k",),
         teacher_config: str = QUICKSTART_TEACHER, student_config: str = QUICKSTART_STUDENT,
         progress: bool = True) -> list[dict]:
    root = Path(root)
    tokens = (tokens,) if isinstance(tokens, str) else tuple(tokens)
    total = 1 + 2 * len(students) * len(tokens)
    print(f"[1/{total}] teacher ({teacher_config})")
    teacher_cfg = load_config(_find(teacher_config))
    teacher = _run(teacher_cfg, root / "teacher", progress)
    rows = [teacher]
    k = 2
    for budget in tokens:
        for size in students:
            for method in ("supervised", "kd"):
                sets = [f"student={size}", f"train.tokens={budget}", f"name={method}-{size}-D{budget}",
                        f"teacher={root / 'teacher' / 'model'}"]
                if method == "supervised":
                    sets += ["method=supervised"]
                cfg = load_config(_find(student_config), sets)
                print(f"[{k}/{total}] {cfg.name}")
                rows.append(_run(cfg, root / cfg.name, progress))
                k += 1
    print()
    print(format_table(rows))
    return rows


def format_table(rows: list[dict]) -> str:
    head = f"{'cell':<26} {'method':<10} {'N_S':>10} {'D_S':>10} {'held-out loss':>14} {'L_T':>7} {'E (Bayes)':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lt = f"{r['L_T']:.4f}" if r.get("L_T") is not None else "-"
        e = f"{r['bayes_loss']:.4f}" if r.get("bayes_loss") is not None else "-"
        lines.append(f"{r['name']:<26} {r['method']:<10} {r['N_S']:>10,} {r['D_S']:>10,} {r['loss']:>14.4f} "
                     f"{lt:>7} {e:>9}")
    return "\n".join(lines)
