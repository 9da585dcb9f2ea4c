"""Predictions for a VLM benchmark: batched generation with a per-sample cache, so a killed run resumes.

    vlm = build_vlm("runs/genrecal/<cell>/model")
    info = predict(vlm, "ai2d", out_dir="runs/eval/m", data_root="~/LMUData", batch_size=16)
    info["predictions"]   # runs/eval/m/<model>_AI2D_TEST.xlsx: dataset columns minus image, plus prediction

Every finished batch appends one JSON line per sample to `<model>_<dataset>.cache.jsonl` (flushed and
fsynced) keyed by a hash of (model name, weights fingerprint, prompt, image bytes, generation settings), so an
interrupted evaluation regenerates nothing it already has, and retrained weights, a changed prompt style or
max_new_tokens never reuse a stale answer.
Samples are batched longest-first (less padding, the trick lm-eval uses); the predictions file keeps the
dataset's order. Decoding is greedy, so batched and one-at-a-time predictions agree (`suite bench vlm-eval`
checks this on every run).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from .tsv import dataset_file, decode_image, get_benchmark, load_dataset, require_columns, write_predictions


def _key(model_name: str, prompt: str, images: list[str], gen: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    for part in (model_name, prompt, *images, json.dumps(dict(gen), sort_keys=True)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _images_of(row: Mapping[str, Any]) -> list[str]:
    image = row.get("image")
    if image is None or (isinstance(image, float) and pd.isna(image)):
        raise ValueError(f"row index {row.get('index')}: no image bytes (image_path-only datasets are not "
                         f"supported for generation)")
    return list(image) if isinstance(image, list) else [image]


def _decode(b64: str, source: Path, index: Any):
    """The row's image; a cell that is not a decodable image names the file and the row."""
    try:
        return decode_image(b64)
    except Exception as e:  # not base64, or not PNG/JPEG bytes
        raise ValueError(f"{source}: row index {index}: the image cannot be decoded "
                         f"({type(e).__name__}: {str(e)[:120]})") from None


def read_cache(path: Path) -> dict[str, str]:
    """key -> prediction; a torn last line (a kill mid-write) is ignored."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
            out[rec["key"]] = rec["prediction"]
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _torn(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def predict(vlm, benchmark: Any, *, out_dir: str | os.PathLike, data_root: str | os.PathLike | None = None,
            model_name: str | None = None, prompt_style: str = "default", batch_size: int = 16,
            limit: int | None = None, max_new_tokens: int | None = None, cache: bool = True,
            progress: bool = False, fmt: str = "xlsx") -> dict[str, Any]:
    """Generate answers for every row of the benchmark (or the first `limit`), write the predictions file.

    Returns {"predictions": path, "n", "generated", "cached", "prompt_style", "max_new_tokens", "model"}.
    """
    from tqdm.auto import tqdm

    bench = get_benchmark(benchmark)
    key, dataset = bench.name, bench.dataset
    model_name = model_name or Path(str(vlm.name)).name or "model"
    df = load_dataset(dataset, data_root)
    source = dataset_file(dataset, data_root)
    require_columns(df, ("question", "image"), source,
                    ("index", "image", "question", "answer", "..."))
    if limit is not None:
        df = df.iloc[:limit].reset_index(drop=True)
    # default budget: the benchmark's (lmms-eval's task defaults; VLMEvalKit leaves it to each model)
    gen = {"max_new_tokens": int(max_new_tokens or bench.max_new_tokens), "prompt_style": prompt_style}
    rows = df.to_dict("records")
    prompts = [bench.build_prompt(r, prompt_style) for r in rows]
    images = [_images_of(r) for r in rows]
    weights = vlm.fingerprint()  # answers of other weights under the same name are never reused
    keys = [_key(f"{model_name}@{weights}", p, ims, gen) for p, ims in zip(prompts, images)]

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / f"{model_name}_{dataset}.cache.jsonl"
    done = read_cache(cache_path) if cache else {}
    todo = [i for i, k in enumerate(keys) if k not in done]
    # longest prompt first: a batch pads to its longest member
    todo.sort(key=lambda i: -len(vlm.tokenizer(prompts[i])["input_ids"]))
    bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc=f"{key} {model_name}", unit="q",
               disable=not progress, leave=False)
    with open(cache_path, "a") if cache else open(os.devnull, "w") as f:
        if cache and _torn(cache_path):
            f.write("\n")  # end a line torn by a kill, so the next record starts on its own line
        for start in range(0, len(todo), max(1, batch_size)):
            idx = todo[start:start + batch_size]
            batch = [([_decode(b, source, rows[i]["index"]) for b in images[i]], prompts[i]) for i in idx]
            answers = vlm.generate(batch, max_new_tokens=gen["max_new_tokens"])
            for i, a in zip(idx, answers):
                done[keys[i]] = a
                f.write(json.dumps({"key": keys[i], "index": str(rows[i]["index"]), "prediction": a}) + "\n")
            f.flush()
            if cache:
                os.fsync(f.fileno())
            bar.update(len(idx))
    bar.close()
    df = df.assign(prediction=[done[k] for k in keys])
    path = write_predictions(df, out / f"{model_name}_{dataset}.{fmt}", prompt_style=prompt_style)
    return {"predictions": str(path), "n": len(rows), "generated": len(todo), "cached": len(rows) - len(todo),
            "prompt_style": prompt_style, "max_new_tokens": gen["max_new_tokens"], "model": model_name}
