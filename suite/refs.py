"""Model references as configs write them: a tiny name (`tiny-1M`), a local path, a Hugging Face id, or
`cell:<id>`, the final model of another cell of the same sweep (a teacher, a stage's starting point).

    resolve_cell_ref("cell:0b9f...", cell_dir)   # -> "<sweep dir>/0b9f.../model", once that cell has finished
    size_label("tiny-0.5M")                      # -> "0.5M", as cell names show model sizes
"""
from __future__ import annotations

import re
from pathlib import Path

CELL_REF = "cell:"


def resolve_cell_ref(ref: str | None, cell_dir: str | Path, what: str = "model") -> str | None:
    """`cell:<id>` -> `<sweep dir>/<id>/model`, once that cell has finished; None for anything else."""
    if ref and ref.startswith(CELL_REF):
        tid = ref[len(CELL_REF):]
        path = Path(cell_dir).parent / tid / "model"
        if not (path.parent / "result.json").exists():
            raise RuntimeError(f"{what} cell {tid} has not finished (no {path.parent / 'result.json'})")
        return str(path)
    return None


def resolve_model_ref(ref: str, cell_dir: str | Path) -> str:
    """`cell:<id>` resolved as above; paths, tiny names and HF ids as they are."""
    return resolve_cell_ref(ref, cell_dir) or ref


def size_label(spec: str | None) -> str:
    """The short model label of cell names: '0.5M' for tiny-0.5M, 'q0.5B' for qwen2-0.5B, else the path's name."""
    if not spec:
        return "?"
    m = re.fullmatch(r"(?:tiny|qwen2)-([0-9.]+[kMB])", spec)
    if m:
        return m.group(1) if spec.startswith("tiny") else "q" + m.group(1)
    return Path(spec.rstrip("/")).name[:24]
