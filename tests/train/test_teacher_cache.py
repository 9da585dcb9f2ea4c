"""The teacher-output cache (suite/train/teacher_cache.py): keyed by content, written once under a lock by
concurrent cells, read back bit for bit, and a damaged shard detected and computed again."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from suite.config import DataConfig
from suite.train.teacher_cache import TeacherCache, cache_key

V, T, K = 50, 8, 5


class _Tok:
    def __init__(self, n=V):
        self.vocab = {f"t{i}": i for i in range(n)}

    def get_vocab(self):
        return self.vocab

    def __len__(self):
        return len(self.vocab)


def _compute(calls=None):
    """A stand-in teacher: example i's log-probabilities are a pure function of i."""
    def compute(indices):
        if calls is not None:
            calls.append(list(indices))
        z = torch.stack([torch.randn(T, V, generator=torch.Generator().manual_seed(i)) for i in indices])
        lp = torch.log_softmax(z, -1)
        v, i = lp.topk(K, dim=-1)
        return v, i
    return compute


def _cache(root, dtype="float32", key="k0", limit=0):
    c = TeacherCache(root, key, T, K, V, dtype, {"teacher": "t"}, limit=limit)
    c.shard_examples = 4   # small shards, so a few rows span two of them
    c.meta["shard_examples"] = 4
    return c


def test_key_changes_with_teacher_data_k_temperature_and_dtype(tmp_path):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "model.safetensors").write_bytes(b"a" * 100)
    (teacher / "config.json").write_text("{}")
    d = DataConfig()
    base = cache_key(str(teacher), d, _Tok(), 32, 1.0, 128, "bfloat16")
    assert base == cache_key(str(teacher), d, _Tok(), 32, 1.0, 128, "bfloat16")   # deterministic
    variants = [cache_key(str(teacher), DataConfig(seed=1), _Tok(), 32, 1.0, 128, "bfloat16"),
                cache_key(str(teacher), d, _Tok(), 64, 1.0, 128, "bfloat16"),
                cache_key(str(teacher), d, _Tok(V + 1), 32, 1.0, 128, "bfloat16"),
                cache_key(str(teacher), d, _Tok(), 32, 2.0, 128, "bfloat16"),
                cache_key(str(teacher), d, _Tok(), 32, 1.0, 64, "bfloat16"),
                cache_key(str(teacher), d, _Tok(), 32, 1.0, 128, "float32"),
                cache_key("tiny-2M", d, _Tok(), 32, 1.0, 128, "bfloat16")]
    (teacher / "model.safetensors").write_bytes(b"b" * 100)   # retrained in place: same name and size
    variants.append(cache_key(str(teacher), d, _Tok(), 32, 1.0, 128, "bfloat16"))
    assert len({base, *variants}) == len(variants) + 1


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_rows_read_back_what_was_computed_across_shards(tmp_path, dtype):
    calls = []
    c = _cache(tmp_path, dtype)
    logp, idx = c.rows(2, 7, _compute(calls))           # examples 2..8: shards 0, 1, 2
    assert logp.shape == (7, T, K) and idx.dtype == torch.int64
    ref_v, ref_i = _compute()(list(range(2, 9)))
    assert torch.equal(idx, ref_i)
    tol = 0 if dtype == "float32" else 1e-2
    assert (logp - ref_v).abs().max() <= tol * ref_v.abs().max()
    assert [cl[0] for cl in calls] == [0, 4, 8]
    again = _cache(tmp_path, dtype)                       # a second cell: reads, computes nothing
    logp2, idx2 = again.rows(2, 7, _compute(calls))
    assert len(calls) == 3 and torch.equal(logp, logp2) and torch.equal(idx, idx2)
    s, s2 = c.summary(), again.summary()
    assert (s["mode"], s["shards_written"], s2["mode"], s2["shards_read"]) == ("write", 3, "hit", 3)
    assert s2["bytes"] > 0 and s2["examples_computed"] == 0


def test_a_corrupt_shard_is_detected_and_rewritten(tmp_path, capsys):
    c = _cache(tmp_path)
    good, _ = c.rows(0, 4, _compute())
    shard = tmp_path / "k0" / "shard_000000"
    arr = shard / "logp.npy"
    raw = bytearray(arr.read_bytes())
    raw[-5] ^= 0xFF                                       # one flipped byte: same size, wrong hash
    arr.write_bytes(bytes(raw))
    calls = []
    logp, _ = _cache(tmp_path).rows(0, 4, _compute(calls))
    assert calls == [[0, 1, 2, 3]] and torch.equal(logp, good)
    assert (tmp_path / "k0" / "shard_000000.corrupt").exists()
    assert "does not match its manifest" in capsys.readouterr().err
    (shard / "manifest.json").write_text("{trunc")          # a damaged manifest: the same
    calls.clear()
    _cache(tmp_path).rows(0, 4, _compute(calls))
    assert len(calls) == 1


def test_concurrent_cells_write_each_shard_once_and_read_the_same_numbers(tmp_path):
    """Three processes ask for the same 12 examples at once; the compute function logs every call and sleeps,
    so without the lock they would all compute shard 0."""
    log = tmp_path / "calls.jsonl"
    script = textwrap.dedent(f"""
        import json, sys, time, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_teacher_cache import _cache, _compute
        base = _compute()
        def compute(indices):
            with open({str(log)!r}, "a") as f:
                f.write(json.dumps(indices) + "\\n")
            time.sleep(0.3)
            return base(indices)
        logp, idx = _cache({str(tmp_path)!r}).rows(0, 12, compute)
        torch.save((logp, idx), sys.argv[1])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"out{i}.pt")]) for i in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    calls = [json.loads(ln)[0] for ln in log.read_text().splitlines()]
    assert sorted(calls) == [0, 4, 8]                     # each shard computed exactly once
    outs = [torch.load(tmp_path / f"out{i}.pt") for i in range(3)]
    for o in outs[1:]:
        assert torch.equal(o[0], outs[0][0]) and torch.equal(o[1], outs[0][1])
    assert not list((tmp_path / "k0").glob(".shard_*.tmp-*"))


def test_a_shard_holds_what_cells_needed_and_a_larger_budget_extends_it(tmp_path):
    """A cell computes the teacher on no example past its budget; a later cell with more steps computes only the
    examples it adds, and both read the same numbers for the shared ones."""
    calls = []
    small = _cache(tmp_path, limit=6)                     # budget: 6 examples; shards of 4
    a, _ = small.rows(0, 6, _compute(calls))
    assert calls == [[0, 1, 2, 3], [4, 5]] and small.summary()["examples_computed"] == 6
    big = _cache(tmp_path, limit=12)
    b, _ = big.rows(0, 12, _compute(calls))
    assert calls[2:] == [[6, 7], [8, 9, 10, 11]]          # shard 1 extended by 2, shard 2 new
    assert torch.equal(a, b[:6]) and big.summary()["mode"] == "mixed"
    m = json.loads((tmp_path / "k0" / "shard_000001" / "manifest.json").read_text())
    assert m["count"] == 4


def test_ids_are_stored_small_when_the_vocabulary_allows(tmp_path):
    c = _cache(tmp_path)
    c.rows(0, 1, _compute())
    assert np.load(tmp_path / "k0" / "shard_000000" / "idx.npy").dtype == np.uint16
    m = json.loads((tmp_path / "k0" / "shard_000000" / "manifest.json").read_text())
    assert m["k"] == K and m["first"] == 0 and set(m["files"]) == {"logp.npy", "idx.npy"}


def _kd_cell(student, teacher, method, tokens="6k"):
    from suite.config import config_from_dict
    return config_from_dict({
        "name": f"kd-{student}", "student": student, "teacher": teacher, "method": method,
        "data": {"kind": "synthetic", "language": "facts", "seq_len": 32, "heldout_examples": 16},
        "optim": {"lr": 4e-3}, "train": {"tokens": tokens, "batch_size": 8, "seed": 0, "eval_batch_size": 16}})


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    from suite.train.loop import train
    root = tmp_path_factory.mktemp("teacher")
    train(_kd_cell("tiny-0.1M", None, "supervised", tokens="8k"), root / "t", progress=False)
    return str(root / "t" / "model")


def test_kd_cells_on_a_full_vocabulary_cache_train_as_without_it(tiny_teacher, tmp_path):
    """k = V in float32: the cached loss is the full KL, so the cells end where the uncached ones do; the second
    student reads what the first wrote and pays no teacher forward (flops.teacher_logits = 0)."""
    from suite.train.loop import train
    cached = {"name": "kd", "teacher_cache": "topk", "cache_k": 100_000, "cache_dtype": "float32"}
    base = train(_kd_cell("tiny-0.01M", tiny_teacher, "kd"), tmp_path / "plain" / "a", progress=False)
    first = train(_kd_cell("tiny-0.01M", tiny_teacher, cached), tmp_path / "grid" / "a", progress=False)
    second = train(_kd_cell("tiny-0.02M", tiny_teacher, cached), tmp_path / "grid" / "b", progress=False)
    assert first["loss"] == pytest.approx(base["loss"], abs=1e-4)
    assert first["L_T"] == pytest.approx(base["L_T"], abs=1e-6)
    c1, c2 = first["teacher_cache"], second["teacher_cache"]
    assert (c1["mode"], c2["mode"]) == ("write", "hit") and c1["key"] == c2["key"]
    assert c1["k"] == first["model_shape"]["vocab_size"] and c2["bytes"] > 0
    assert (tmp_path / "grid" / ".teacher_cache" / c1["key"]).is_dir()      # beside the cells: the sweep's
    assert second["flops"]["teacher_logits"] == 0 < second["flops"]["teacher_logits_per_cell"]
    assert first["flops"]["teacher_logits"] >= first["flops"]["teacher_logits_per_cell"]   # whole shards
    assert base["flops"]["teacher_logits"] == first["flops"]["teacher_logits_per_cell"]


def test_a_top_k_cache_is_close_and_a_new_k_is_a_new_cache(tiny_teacher, tmp_path):
    from suite.train.loop import train
    base = train(_kd_cell("tiny-0.01M", tiny_teacher, "kd"), tmp_path / "plain", progress=False)
    r8 = train(_kd_cell("tiny-0.01M", tiny_teacher, {"name": "kd", "teacher_cache": "topk", "cache_k": 8}),
               tmp_path / "g" / "k8", progress=False)
    r16 = train(_kd_cell("tiny-0.01M", tiny_teacher, {"name": "kd", "teacher_cache": "topk", "cache_k": 16}),
                tmp_path / "g" / "k16", progress=False)
    assert r8["teacher_cache"]["key"] != r16["teacher_cache"]["key"]
    assert r8["teacher_cache"]["mode"] == r16["teacher_cache"]["mode"] == "write"
    assert abs(r16["loss"] - base["loss"]) < 0.05


def test_students_on_a_corpus_share_the_stream_and_the_cache(tmp_path):
    """On a text corpus, KD students read the teacher's tokenizer and the data seed's order, so two students of
    different sizes and init seeds see the same examples: the second one only reads."""
    from suite.config import config_from_dict
    from suite.train.loop import train
    docs = tmp_path / "corpus.jsonl"
    docs.write_text("\n".join(json.dumps({"text": f"line {i} says {i * 7 % 13} then {i % 5} and more words"})
                              for i in range(400)) + "\n")
    data = {"kind": "corpus", "path": str(docs), "seq_len": 16, "heldout_fraction": 0.1, "tokenizer_vocab_size": 300}

    def cell(student, method, seed=0):
        return config_from_dict({"student": student, "teacher": None if method == "supervised" else
                                 str(tmp_path / "t" / "model"), "method": method, "data": data,
                                 "train": {"tokens": 2048, "batch_size": 8, "seed": seed, "eval_batch_size": 8}})
    train(cell("tiny-0.1M", "supervised"), tmp_path / "t", progress=False)
    m = {"name": "kd", "teacher_cache": "topk", "cache_k": 16}
    a = train(cell("tiny-0.01M", m), tmp_path / "g" / "a", progress=False)
    b = train(cell("tiny-0.02M", m, seed=1), tmp_path / "g" / "b", progress=False)
    assert (a["teacher_cache"]["mode"], b["teacher_cache"]["mode"]) == ("write", "hit")
    assert a["teacher_cache"]["key"] == b["teacher_cache"]["key"]
