"""VLMEvalKit data files: the data root, benchmark TSVs with image references, images on disk, predictions io.

    root = data_root()                                   # $LMUData if it names a directory, else ~/LMUData
    df = load_dataset("AI2D_TEST")                       # <root>/AI2D_TEST.tsv, references resolved, NaN images dropped
    paths = dump_image(df.iloc[0], "AI2D_TEST")          # [<root>/images/AI2D_TEST/<index>.png], decoded once
    preds = read_predictions("outputs/m_AI2D_TEST.xlsx") # xlsx | tsv | csv | json | jsonl
    write_predictions(preds, "outputs/m_AI2D_TEST.xlsx") # dataset columns minus `image`, plus `prediction`

The TSV rules are VLMEvalKit's (`ImageBaseDataset.__init__`): `index` is a unique id, cast to int when every
value is an integer; `image` is base64 PNG/JPEG bytes, and a value of 64 characters or fewer is the `index` of
another row whose image is reused; a value written as a Python list literal holds several images; rows with a
NaN image are dropped. Cells are read as strings (pandas' default NA spellings still read as NaN, as upstream),
so an answer column of "14" and "1.45" keeps its spelling.
"""
from __future__ import annotations

import ast
import base64
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from ..._io import mkstemp
from ...config import BENCHMARKS
from ...registry import UnknownNameError, did_you_mean
from .. import benchmarks as _builtin  # noqa: F401  (registers the built-in entries: lookups need no plugins)

PREDICTION_FORMATS = ("xlsx", "tsv", "csv", "json", "jsonl")
REQUIRED_PREDICTION_COLUMNS = ("index", "prediction")
_REF_MAX = 64  # an `image` cell this short is another row's index, not image bytes
_INT = re.compile(r"-?\d+")
_XLSX_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")  # what openpyxl refuses to store
_XLSX_CELL_MAX = 32767


# ------------------------------------------------------------------------------ benchmarks by name
# The VLMEvalKit benchmarks are the entries of config.BENCHMARKS that name a dataset (VLMBenchmark,
# suite/eval/vlm/benchmark.py); these look them up by key or dataset name without a table of their own.


def vlm_benchmarks(complete: bool = True) -> dict[str, Any]:
    """{key: entry} of the registered VLMEvalKit benchmarks, in registration order (imports their modules).
    `complete=False`: the built-in ones and those registered so far, without importing the plugin packages."""
    return {n: b for n, b in BENCHMARKS.items(sort=False, plugins=complete) if getattr(b, "dataset", None)}


def _find(name: Any) -> Any | None:
    """The entry `name` refers to: its key ("ai2d"), its dataset ("AI2D_TEST", any case, "_" optional), or None."""
    if not isinstance(name, str):  # an entry already
        return name if getattr(name, "dataset", None) else None
    low = name.strip().lower()
    for complete in (False, True):  # what is registered (no plugin imports: they load torch), then the plugins
        if low in BENCHMARKS.names(sort=False, plugins=complete):  # a key: only its own module is imported
            b = BENCHMARKS.get(low)
            return b if getattr(b, "dataset", None) else None
        for b in vlm_benchmarks(complete).values():
            if low in (b.dataset.lower(), b.dataset.lower().replace("_", "")):
                return b
    return None


def get_benchmark(name: Any) -> Any:
    """The VLMBenchmark entry of "ai2d" | "mmvet" | "mathvista" | ..., or of a dataset name ("AI2D_TEST")."""
    found = _find(name)
    if found is None:
        known = vlm_benchmarks()
        choices = list(known) + [b.dataset for b in known.values()]
        raise UnknownNameError(f"unknown VLM benchmark {name!r}{did_you_mean(name, choices)}; "
                               f"valid: {', '.join(known)} (or {', '.join(b.dataset for b in known.values())})")
    return found


def benchmark_key(name: str) -> str:
    """"ai2d" / "AI2D_TEST" / "MathVista_MINI" ... -> the benchmark key ("ai2d", "mmvet", "mathvista")."""
    return get_benchmark(name).name


def dataset_name(name: str) -> str:
    """"ai2d" -> "AI2D_TEST": the VLMEvalKit dataset (its TSV is <root>/<dataset>.tsv)."""
    return get_benchmark(name).dataset


def __getattr__(name: str):
    # the tables this module held before benchmarks declared their datasets (issue 29): copies made from the
    # registered entries now (the built-in ones and those registered so far)
    if name == "DATASETS":
        return {k: b.dataset for k, b in vlm_benchmarks(complete=False).items()}
    if name == "DATASET_URLS":
        return {b.dataset: b.url for b in vlm_benchmarks(complete=False).values() if b.url}
    if name == "DATASET_MD5":
        return {b.dataset: b.md5 for b in vlm_benchmarks(complete=False).values() if b.md5}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """`root` if given; else `$LMUData` when it names an existing directory; else ~/LMUData (VLMEvalKit's rule)."""
    if root is not None:
        return Path(os.path.expanduser(str(root)))
    env = os.environ.get("LMUData")
    if env and Path(os.path.expanduser(env)).is_dir():
        return Path(os.path.expanduser(env))
    return Path.home() / "LMUData"


def dataset_file(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """<root>/<dataset>.tsv; a benchmark key ("ai2d") names its dataset, other names are used as they are."""
    return data_root(root) / f"{_canonical(dataset)}.tsv"


def _canonical(name: str) -> str:
    b = _find(str(name))
    return b.dataset if b is not None else str(name)


def load_dataset(dataset: str, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The benchmark table: NaN images dropped, image references resolved, `index` int when all are ints."""
    path = dataset_file(dataset, root)
    if not path.is_file():
        b = _find(path.stem)
        url = b.url if b is not None else None
        hint = f" (download {url} there, or write a fixture with suite.eval.vlm.write_vlm_fixture)" if url else ""
        raise FileNotFoundError(f"benchmark file {path} does not exist{hint}; the data root is --data-root, "
                                f"else $LMUData when it names a directory, else ~/LMUData")
    df = pd.read_csv(path, sep="\t", dtype=str)
    require_columns(df, ["index"], path, ["index", "image (base64, or another row's index)", "question",
                                          "answer", "..."])
    if "image" in df.columns:
        df = df[~df["image"].isna()].reset_index(drop=True)
        df["image"] = resolve_image_refs(df["index"], df["image"], source=path)
    df["index"] = normalize_index(df["index"])
    return df


def require_columns(df: pd.DataFrame, columns: Iterable[str], where: Any,
                    expected: Iterable[str] | None = None) -> None:
    """A ValueError naming `where`, the missing columns and the expected ones when `df` lacks any of `columns`."""
    columns = list(columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {', '.join(map(repr, missing))}; expected "
                         f"{', '.join(expected if expected is not None else columns)} "
                         f"(it has: {', '.join(map(str, df.columns)) or 'none'})")


def resolve_image_refs(index: Iterable[Any], images: Iterable[Any], source: Any = "table") -> list:
    """Replace reference cells (<= 64 chars: another row's index) by that row's image; list literals -> lists."""
    keys = [str(i) for i in index]
    by_index = dict(zip(keys, (str(v) for v in images)))
    out = []
    for k in keys:
        value = by_index[k]
        if len(value) <= _REF_MAX:
            target = by_index.get(value)
            if target is None or len(target) <= _REF_MAX:
                raise ValueError(f"{source}: row index {k} refers to image of index {value!r}, "
                                 f"which is {'missing' if target is None else 'itself a reference'}")
            value = target
        out.append(_to_list(value))
    return out


def _to_list(value: str) -> str | list[str]:
    if value.startswith("[") and value.endswith("]"):
        try:
            items = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        if isinstance(items, list):
            return [str(x) for x in items] if len(items) != 1 else str(items[0])
    return value


def normalize_index(index: Iterable[Any]) -> list:
    """VLMEvalKit casts `index` to int when every value is an integer; otherwise keeps strings."""
    vals = list(index)

    def as_int(v):
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            return int(v) if v.is_integer() else None
        s = str(v).strip()
        return int(s) if _INT.fullmatch(s) else None

    ints = [as_int(v) for v in vals]
    if vals and all(i is not None for i in ints):
        return ints
    return [str(v) for v in vals]


# ---------------------------------------------------------------------------------------------- images


def decode_image(b64: str):
    """A PIL image (RGB) from base64 PNG/JPEG bytes."""
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img.convert("RGB") if img.mode != "RGB" else img


def encode_image(img, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def image_dir(dataset: str, root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / "images" / _canonical(dataset)


def dump_image(row: Mapping[str, Any], dataset: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Decode the row's image(s) to <root>/images/<dataset>/<index>.png (or <index>_<i>.png) once; the paths.

    A row without image bytes but with `image_path` (a meta-only dataset) gets those paths back as they are.
    """
    folder = image_dir(dataset, root)
    image = row.get("image") if hasattr(row, "get") else row["image"]
    if image is None or (isinstance(image, float) and pd.isna(image)):
        paths = row.get("image_path") if hasattr(row, "get") else None
        if paths is None or (isinstance(paths, float) and pd.isna(paths)):
            raise ValueError(f"row index {row['index']}: no image and no image_path")
        paths = _to_list(str(paths))
        return [Path(p) for p in (paths if isinstance(paths, list) else [paths])]
    images = image if isinstance(image, list) else [image]
    names = [f"{row['index']}.png"] if len(images) == 1 else [f"{row['index']}_{i}.png" for i in range(len(images))]
    out = []
    for b64, name in zip(images, names):
        path = folder / name
        if not _readable(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            img = decode_image(b64)
            fd, tmp = mkstemp(path.parent, f".{name}.", ".png")
            os.close(fd)
            img.save(tmp, format="PNG")
            os.replace(tmp, path)  # concurrent dumpers never see half an image
        out.append(path)
    return out


def _readable(path: Path) -> bool:
    if not path.is_file():
        return False
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[0] > 0 and im.size[1] > 0
    except OSError:
        return False


# ----------------------------------------------------------------------------------------- predictions


def read_predictions(source: str | os.PathLike | pd.DataFrame,
                     require: Iterable[str] = REQUIRED_PREDICTION_COLUMNS) -> pd.DataFrame:
    """A predictions table from xlsx / tsv / csv / json / jsonl (or a DataFrame), `index` normalized.

    Errors name the file and the columns a predictions file needs.
    """
    if isinstance(source, pd.DataFrame):
        df, label = source.copy(), "predictions DataFrame"
    else:
        path = Path(os.path.expanduser(str(source)))
        label = str(path)
        if path.is_dir():
            raise ValueError(f"{path}: is a directory, not a predictions file (xlsx, tsv, csv, json or jsonl)")
        if not path.is_file():
            raise FileNotFoundError(f"predictions file {path} does not exist")
        df = read_table(path)
    missing = [c for c in require if c not in df.columns]
    if missing:
        raise ValueError(f"{label}: missing column(s) {', '.join(repr(c) for c in missing)}; a predictions file "
                         f"needs {', '.join(repr(c) for c in require)} (VLMEvalKit shape: the dataset's columns "
                         f"minus 'image', plus 'prediction'); it has: {', '.join(map(str, df.columns)) or 'none'}")
    if "index" in df.columns:
        if df["index"].isna().any():
            raise ValueError(f"{label}: empty 'index' cells in rows {list(df.index[df['index'].isna()])[:5]}")
        df["index"] = normalize_index(df["index"])
        dup = df["index"][df["index"].duplicated()].tolist()
        if dup:
            raise ValueError(f"{label}: duplicate index values {dup[:5]}")
    return df


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A predictions or dataset table by its suffix; a file that cannot be read is named in the error."""
    path = Path(path)
    fmt = _format(path)
    try:
        return _read(path, fmt)
    except Exception as e:  # truncated xlsx (BadZipFile), broken JSON, binary junk...
        raise ValueError(f"{path}: cannot be read as {fmt} ({type(e).__name__}: {str(e)[:200]})") from None


def _read(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "xlsx":
        # as strings, like the TSVs: read_excel would otherwise parse a column whose cells all look numeric
        # ("14", "14.5", "") into floats, and int(14.5) == 14 would credit a wrong MathVista integer answer
        return pd.read_excel(path, dtype=str)
    if fmt in ("tsv", "csv"):
        return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=str)
    if fmt == "jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    obj = json.loads(path.read_text())
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        return pd.DataFrame(obj)  # pandas' default orient: {column: {row: value}}
    return pd.DataFrame(obj)


def _format(path: Path, fmt: str | None = None) -> str:
    f = (fmt or path.suffix.lstrip(".")).lower()
    if f not in PREDICTION_FORMATS:
        raise ValueError(f"{path}: unsupported format {f or '(no suffix)'!r}; valid: {', '.join(PREDICTION_FORMATS)}")
    return f


def write_predictions(df: pd.DataFrame, path: str | os.PathLike, fmt: str | None = None,
                      prompt_style: str | None = None) -> Path:
    """Write predictions in VLMEvalKit's shape: every column but `image`, plus `prediction` (xlsx by suffix default).

    `prompt_style` is recorded as a `prompt_style` column (VLMEvalKit keeps extra columns through scoring).
    """
    if "prediction" not in df.columns:
        raise ValueError(f"{path}: predictions need a 'prediction' column (columns: {', '.join(map(str, df.columns))})")
    out = df.drop(columns=[c for c in ("image",) if c in df.columns])
    if prompt_style is not None:
        out = out.assign(prompt_style=prompt_style)
    return write_table(out, path, fmt)


def write_table(df: pd.DataFrame, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """xlsx / tsv / csv / json / jsonl, written atomically; xlsx cells lose characters Excel cannot hold."""
    path = Path(path)
    f = _format(path, fmt if fmt else (None if path.suffix else "xlsx"))
    if not path.suffix:
        path = path.with_suffix(f".{f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = mkstemp(path.parent, f".{path.name}.", f".{f}")
    os.close(fd)
    try:
        if f == "xlsx":
            _xlsx_safe(df).to_excel(tmp, index=False, engine="openpyxl")
        elif f in ("tsv", "csv"):
            df.to_csv(tmp, sep="\t" if f == "tsv" else ",", index=False)
        elif f == "jsonl":
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            df.to_json(tmp, orient="records", force_ascii=False, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _xlsx_safe(df: pd.DataFrame) -> pd.DataFrame:
    def clean(v):
        if isinstance(v, str):
            v = _XLSX_ILLEGAL.sub("", v)
            return v[:_XLSX_CELL_MAX]
        if isinstance(v, (list, dict, tuple)):
            return str(v)
        return v

    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].map(clean).astype(object)
    return out
