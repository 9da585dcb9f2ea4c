"""suite.data.corpus: txt/jsonl/parquet/directory/hf readers and their error messages."""
from __future__ import annotations

import json
import sys
import types

import pandas as pd
import pytest

from suite.data import MissingFieldError, read_documents


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_txt_is_one_document_per_non_empty_line(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("first doc\n\n  \nsecond  doc \r\nthird")
    assert read_documents(f) == ["first doc", "second  doc ", "third"]


def test_jsonl_default_and_custom_field(tmp_path):
    f = _jsonl(tmp_path / "a.jsonl", [{"text": "one", "body": "x"}, {"text": "two", "body": "y"}, {"text": ""}])
    (tmp_path / "a.jsonl").write_text(f.read_text() + "\n")  # trailing blank line is fine
    assert read_documents(f) == ["one", "two"]
    g = _jsonl(tmp_path / "b.jsonl", [{"body": "x"}, {"body": "y"}])
    assert read_documents(g, text_field="body") == ["x", "y"]


def test_jsonl_missing_field_names_field_file_and_line(tmp_path):
    f = _jsonl(tmp_path / "c.jsonl", [{"text": "ok"}, {"content": "no text", "id": 3}])
    with pytest.raises(MissingFieldError) as e:
        read_documents(f)
    msg = str(e.value)
    assert "c.jsonl:2" in msg and "'text'" in msg and "'content'" in msg and "'id'" in msg
    assert isinstance(e.value, KeyError)


def test_jsonl_bad_json_and_bad_types_name_the_line(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "ok"}\n{not json}\n')
    with pytest.raises(ValueError, match=r"d\.jsonl:2: not valid JSON"):
        read_documents(f)
    g = _jsonl(tmp_path / "e.jsonl", [{"text": 5}])
    with pytest.raises(TypeError, match=r"e\.jsonl:1: field 'text' is int"):
        read_documents(g)


def test_parquet_column_and_missing_column(tmp_path):
    f = tmp_path / "p.parquet"
    pd.DataFrame({"text": ["a b", None, "c"], "meta": [1, 2, 3]}).to_parquet(f)
    assert read_documents(f) == ["a b", "c"]
    with pytest.raises(MissingFieldError) as e:
        read_documents(f, text_field="content")
    msg = str(e.value)
    assert "p.parquet" in msg and "'content'" in msg and "'text'" in msg and "'meta'" in msg


def test_directory_reads_matching_files_sorted(tmp_path):
    (tmp_path / "b.txt").write_text("from b\n")
    _jsonl(tmp_path / "a.jsonl", [{"text": "from a"}])
    (tmp_path / "sub").mkdir()
    pd.DataFrame({"text": ["from sub"]}).to_parquet(tmp_path / "sub" / "c.parquet")
    (tmp_path / "notes.md").write_text("ignored\n")
    (tmp_path / ".hidden.txt").write_text("ignored\n")
    assert read_documents(tmp_path) == ["from a", "from b", "from sub"]


def test_empty_directory_is_an_error(tmp_path):
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"\.txt/\.jsonl/\.parquet"):
        read_documents(tmp_path)


def test_missing_file_and_wrong_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing-corpus.jsonl"):
        read_documents(tmp_path / "missing-corpus.jsonl")
    f = tmp_path / "data.csv"
    f.write_text("text\nx\n")
    with pytest.raises(ValueError) as e:
        read_documents(f)
    assert "data.csv" in str(e.value) and ".txt" in str(e.value) and ".jsonl" in str(e.value) \
        and ".parquet" in str(e.value)


def test_hf_without_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    with pytest.raises(ImportError, match="datasets"):
        read_documents("hf:someone/corpus")


def _fake_datasets(monkeypatch, load):
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load))


def test_hf_passes_id_config_split_and_reads_the_column(monkeypatch):
    calls = []

    class _Split:
        column_names = ["text", "label"]

        def __getitem__(self, col):
            return {"text": ["doc one", "", "doc two"], "label": [0, 1, 2]}[col]

    def load(name, config, split):
        calls.append((name, config, split))
        return _Split()

    _fake_datasets(monkeypatch, load)
    assert read_documents("hf:org/set") == ["doc one", "doc two"]
    assert read_documents("hf:org/set:cfg:validation") == ["doc one", "doc two"]
    assert calls == [("org/set", None, "train"), ("org/set", "cfg", "validation")]
    with pytest.raises(MissingFieldError, match="'body'.*available: 'text', 'label'"):
        read_documents("hf:org/set", text_field="body")


def test_hf_unreachable_hub_is_a_clear_error(monkeypatch):
    def load(name, config, split):
        raise ConnectionError("no network")

    _fake_datasets(monkeypatch, load)
    with pytest.raises(RuntimeError, match="could not load Hugging Face dataset 'org/set'.*no network"):
        read_documents("hf:org/set")
    with pytest.raises(ValueError, match="expected hf:<dataset_id>"):
        read_documents("hf:")
