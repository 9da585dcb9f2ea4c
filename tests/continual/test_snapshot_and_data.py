"""Base snapshot on disk (fp16, streamed thresholds), replay mixing, task data readers and prompts."""
import json

import numpy as np
import pytest
import torch

from suite.continual import (SEQUENCES, Snapshot, build_snapshot, disk_blocks, load_task, moments, sequence_tasks,
                             state_of, stream_moments)
from suite.continual.snapshot import to_half_keeping_states
from suite.continual.methods import tm_loss
from suite.continual.stage import Plan, replay_samples
from suite.data import make_source
from suite.models import HiddenStatesLM, build_model


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    src = make_source("synthetic", seq_len=24, language="synthetic-small", heldout_examples=8)
    replay = [r[:n] for r, n in zip(replay_samples(src, None, 12, 20), [20, 7, 13, 20, 3, 11, 20, 9, 16, 5, 20, 2])]
    model = HiddenStatesLM(build_model("tiny-0.01M", vocab_size=len(src.tokenizer), seed=0)).eval()
    path = tmp_path_factory.mktemp("snap") / "s"
    return build_snapshot(model, replay, path, batch_size=5), model, replay


def test_snapshot_stores_each_samples_base_states_in_half_precision(snapshot):
    snap, model, replay = snapshot
    assert snap.states.dtype == np.float16 and isinstance(snap.states, np.memmap)
    assert len(snap) == len(replay) and snap.states.shape[0] == sum(len(r) for r in replay)
    for i in (0, 4, 11):  # one sample at a time, unpadded, as the reference runs them
        with torch.no_grad():
            ref = model(torch.as_tensor(replay[i])[None])[0]
        (got,) = snap.rows([i])
        torch.testing.assert_close(torch.from_numpy(np.asarray(got, dtype=np.float32)), ref, rtol=2e-3, atol=2e-3)
    assert Snapshot.open(snap.path).meta["samples"] == 12
    torch.testing.assert_close(snap.head().float(), model.head_weight.detach(), rtol=1e-3, atol=1e-3)


def test_thresholds_streamed_from_disk_equal_the_in_memory_computation(snapshot):
    snap, model, replay = snapshot
    with torch.no_grad():  # the reference: fp32 states of each sample alone, moments in memory
        full = torch.cat([model(torch.as_tensor(r)[None])[0] for r in replay])
    mu, sd = moments(full)
    torch.testing.assert_close(snap.mu, mu, rtol=0, atol=1e-6)   # padded batches vs one at a time: fp32 noise
    torch.testing.assert_close(snap.sigma, sd, rtol=0, atol=1e-6)
    lo, hi = snap.thresholds(1.0)
    torch.testing.assert_close(lo, (snap.mu - snap.sigma).float())
    torch.testing.assert_close(hi, (snap.mu + snap.sigma).float())
    stored = torch.from_numpy(np.asarray(snap.states, dtype=np.float32))
    for block in (7, 64, 10_000):  # streamed from disk in blocks that split samples anywhere = in memory
        smu, ssd = stream_moments(disk_blocks(snap.states, block))
        ref_mu, ref_sd = moments(stored)
        torch.testing.assert_close(smu, ref_mu, rtol=0, atol=1e-10)
        torch.testing.assert_close(ssd, ref_sd, rtol=0, atol=1e-10)
    # float16 storage keeps every element's activation state: the base model does not violate its own snapshot
    near = ((full - lo).abs() < 1e-3) | ((full - hi).abs() < 1e-3)
    assert near.sum() > 0  # there are elements within rounding distance of a threshold
    assert torch.equal(state_of(stored, lo, hi), state_of(full, lo, hi))
    assert tm_loss(full, stored, lo, hi).item() == 0.0
    assert (stored - full).abs().max() < 2e-2


def test_float16_rounding_never_moves_an_element_across_a_threshold():
    lo, hi = torch.tensor([0.1]), torch.tensor([0.30004])
    x = torch.tensor([[0.30001], [0.1000001], [0.30006], [0.2]])
    y = to_half_keeping_states(x, lo, hi)
    assert torch.equal(state_of(y.float(), lo, hi), state_of(x, lo, hi))
    assert (x.half() != y).any() and ((y.float() - x).abs() < 1e-3).all()


def test_replay_mixing_once_per_epoch_or_k_per_batch():
    p = Plan(n_task=20, n_replay=12, per_batch=0, batch=8, epochs=2, seed=(0, 1))
    assert p.steps == 8  # 2 epochs × 32 rows / 8
    seen = np.concatenate([p.rows(s) for s in range(p.steps)])
    for e in range(2):  # each replay sample and each task row exactly once per epoch
        assert sorted(seen[e * 32:(e + 1) * 32]) == list(range(32))
    assert (p.rows(3) == Plan(20, 12, 0, 8, 2, (0, 1)).rows(3)).all()        # a pure function of the step
    assert not (p.rows(3) == Plan(20, 12, 0, 8, 2, (1, 1)).rows(3)).all()    # the seed reshuffles
    bi = Plan(n_task=20, n_replay=12, per_batch=3, batch=8, epochs=1, seed=(0, 1))
    assert bi.steps == 4  # 20 task rows / 5 per batch
    rows = [bi.rows(s) for s in range(bi.steps)]
    assert all((r < 12).sum() == 3 for r in rows)
    assert sorted(np.concatenate(rows)[np.concatenate(rows) >= 12]) == list(range(12, 32))
    with pytest.raises(ValueError, match="replay_per_batch"):
        Plan(20, 12, 8, 8, 1, (0,))


def test_replay_samples_of_a_corpus_stay_out_of_its_heldout_blocks(tmp_path):
    """The corpus's held-out blocks are the end of its token stream: replaying the first N documents must not
    train on them (the general held-out loss would be measured on replayed text)."""
    from suite.config import DataConfig

    f = tmp_path / "docs.jsonl"
    f.write_text("".join(json.dumps({"text": f"document {i} says the quick brown fox jumps over the lazy dog"}) + "\n"
                         for i in range(40)))
    cfg = DataConfig(kind="corpus", path=str(f), seq_len=16, heldout_fraction=0.25)
    src = make_source("corpus", seq_len=16, path=str(f), heldout_fraction=0.25, tokenizer_vocab_size=300)
    ok = replay_samples(src, cfg, 10, 12)
    assert len(ok) == 10
    assert list(ok[0]) == src.tokenizer(json.loads(f.read_text().splitlines()[0])["text"],
                                        add_special_tokens=False)["input_ids"][:12]
    with pytest.raises(ValueError, match="held-out blocks"):
        replay_samples(src, cfg, 40, 12)


def test_synthetic_tasks_are_deterministic_and_labelled_by_their_keywords():
    t = load_task("syn-3", language="synthetic-small")
    assert t == load_task("syn-3", language="synthetic-small")
    assert len(t.labels) == 4 and len(t.train) == 2000 and t.train[0] != t.test[0]
    counts = {lbl: 0 for lbl in t.labels}
    for ex in t.train[:400]:
        counts[ex.label] += 1
    assert min(counts.values()) > 50  # classes are balanced
    p = t.prompt(t.train[0].sentence)
    assert p.startswith(t.template.split("{sentence}")[0]) and " ".join(t.labels) in p
    other = load_task("syn-1", language="synthetic-small")
    assert set(other.labels).isdisjoint(t.labels) and other.template != t.template


def _olora_fixture(root):
    for kind, name, labels, splits in (("SC", "yelp", ["negative", "positive"], ("train", "dev")),
                                       ("COPA", "COPA", ["A", "B"], ("train", "test"))):
        d = root / kind / name
        d.mkdir(parents=True)
        (d / "labels.json").write_text(json.dumps(labels))
        for s in splits:
            rows = [{"sentence": f"{s} text {i}", "label": labels[i % 2]} for i in range(3)]
            (d / f"{s}.json").write_text(json.dumps(rows))


def test_olora_layout_reader_and_prompt(tmp_path):
    _olora_fixture(tmp_path)
    yelp = load_task("yelp", data_dir=str(tmp_path))
    assert yelp.kind == "SC" and yelp.labels == ("negative", "positive") and yelp.test_split == "dev"
    assert yelp.train[1].sentence == "train text 1" and yelp.train[1].label == "positive"
    assert yelp.prompt("Great food.") == ("What is the sentiment of the following paragraph? Choose one from the "
                                          "option.\nOption: negative, positive\nGreat food.\nAnswer:")
    copa = load_task("COPA", data_dir=str(tmp_path))
    assert copa.prompt("x") == "x\nAnswer:" and copa.test[0].sentence == "test text 0"
    with pytest.raises(FileNotFoundError, match="MNLI"):
        load_task("MNLI", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="data_dir"):
        load_task("yelp")


def test_sequence_presets_and_names():
    assert sequence_tasks("olora-long") == ("yelp", "amazon", "MNLI", "CB", "COPA", "QQP", "RTE", "IMDB", "SST-2",
                                            "dbpedia", "agnews", "yahoo", "MultiRC", "BoolQA", "WiC")
    assert all(len(SEQUENCES.get(n)) == 15 for n in ("olora-long", "olora-order4", "olora-order5"))
    assert all(sorted(SEQUENCES.get(n)) == sorted(SEQUENCES.get("olora-long")) for n in SEQUENCES.names()
               if n.startswith("olora"))
    assert sequence_tasks("syn-2, syn-1") == ("syn-2", "syn-1")
    with pytest.raises(ValueError, match="did you mean 'olora-long'"):
        sequence_tasks("olora-lon")
    with pytest.raises(ValueError, match=r"'syn-9' .*syn-1 \.\. syn-8"):  # not taken for an O-LoRA task
        sequence_tasks("syn-1,syn-9")


def test_a_broken_instruction_config_is_named(tmp_path):
    _olora_fixture(tmp_path)
    (tmp_path / "instruction_config.json").write_text('{"SC": [')
    with pytest.raises(ValueError, match="instruction_config.json: not valid JSON"):
        load_task("yelp", data_dir=str(tmp_path))


def test_replay_is_a_seeded_random_draw_and_first_n_stays_available(tmp_path):
    from suite.config import DataConfig

    src = make_source("synthetic", seq_len=24, language="synthetic-small", heldout_examples=8)
    first = replay_samples(src, None, 6, 20, sample="first")
    a = replay_samples(src, None, 6, 20, sample="random", seed=0)
    b = replay_samples(src, None, 6, 20, sample="random", seed=0)
    c = replay_samples(src, None, 6, 20, sample="random", seed=1)
    key = lambda xs: [tuple(x) for x in xs]  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c) and key(a) != key(first)
    assert key(first) == key(replay_samples(src, None, 6, 20))  # the old behaviour, by name
    # a corpus: the draw comes only from documents that end before the held-out blocks
    f = tmp_path / "docs.jsonl"
    texts = [f"document {i} says the quick brown fox jumps over the lazy dog" for i in range(40)]
    f.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    cfg = DataConfig(kind="corpus", path=str(f), seq_len=16, heldout_fraction=0.25)
    src = make_source("corpus", seq_len=16, path=str(f), heldout_fraction=0.25, tokenizer_vocab_size=300)
    drawn = replay_samples(src, cfg, 10, 12, sample="random", seed=3)
    enc = [tuple(src.tokenizer(t, add_special_tokens=False)["input_ids"][:12]) for t in texts]
    picked = [enc.index(tuple(x)) for x in drawn]
    assert len(set(picked)) == 10 and picked != list(range(10)) and max(picked) < 30  # 25% held out: docs 30+
    with pytest.raises(ValueError, match="documents before its held-out blocks"):
        replay_samples(src, cfg, 35, 12, sample="random")


def test_replay_sample_first_keeps_the_ids_of_cells_run_before_the_field_existed(smollm2):
    """sweeps/gere_real.yaml replays the first 200 passages: its ids are those of the runs in
    analysis/evidence/real_checkpoints (made before replay_sample existed); the random default is a new cell."""
    import csv
    from pathlib import Path

    from suite.config import cell_id, config_from_dict
    from suite.sweep.grid import load_grid

    root = Path(__file__).resolve().parents[2]
    grid = load_grid(root / "sweeps" / "gere_real.yaml")
    rows = list(csv.DictReader((root / "analysis/evidence/real_checkpoints/h200_2026-12-04.csv").open()))
    assert {c.id for c in grid.cells} == {r["cell_id"] for r in rows if r["sweep"].startswith("gere")}
    cfg = grid.cells[0].config
    assert cfg.continual.replay_sample == "first"
    d = cfg.to_dict()
    d["continual"]["replay_sample"] = "random"
    assert cell_id(config_from_dict(d, "test")) != cell_id(cfg)
    d["continual"]["replay_sample"] = "first"
    assert cell_id(config_from_dict(d, "test")) == cell_id(cfg)
