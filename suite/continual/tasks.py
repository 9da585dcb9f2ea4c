"""Continual-learning tasks: the O-LoRA / GeRe data layout, the 15-task orders, and a synthetic family.

    names = sequence_tasks("olora-long")                 # the 15 task names, in training order
    task = load_task("yelp", data_dir="CL_Benchmark")    # labels, prompt template, train / test examples
    task = load_task("syn-3", language="synthetic")      # a synthetic classification task (no files)
    task.prompt(example.sentence)                        # instruction, options, sentence, answer cue

O-LoRA layout (methods.md B.7-B.8, B.11): `DATA_DIR/<TYPE>/<task>/{train,dev,test}.json`, each a JSON list
of {"sentence", "label"}, plus `labels.json` (the option list); TYPE is NLI, QQP, SC, TC, BoolQA, MultiRC,
WiC or COPA. A flat `DATA_DIR/<task>/` works too. The prompt is GeRe's demo template,

    "<instruction>\\nOption: <labels joined by ', '>\\n<sentence>\\nAnswer:"          (COPA: "<sentence>\\nAnswer:")

with O-LoRA's instruction per task type (`configs/instruction_config.json`; a copy of that file in DATA_DIR or
its parent overrides the built-in strings). A task without a test.json (yelp, IMDB, MultiRC and yahoo in the
public O-LoRA snapshot) is scored on its dev.json, and the task says so (`test_split`).

The synthetic family is made from the synthetic language's words, so a tiny model pretrained on that language
has every token of it. Task t has its own instruction (3 words), C_t label words and 3 keywords per class;
a sentence is a document of the language with this task's keywords scrubbed, then 2 keywords of the label's
class planted at random positions. The label is a function of the sentence, learnable by finding a keyword,
and the tasks compete for the same output position, so a model fine-tuned on task 5 alone forgets task 1.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..registry import Registry, did_you_mean

# O-LoRA configs/instruction_config.json, zero-shot instruction per task type (the trailing "\n" dropped:
# GeRe's template puts one newline after the instruction). COPA has none there.
INSTRUCTIONS: dict[str, str | None] = {
    "NLI": 'What is the logical relationship between the "sentence 1" and the "sentence 2"? '
           'Choose one from the option.',
    "QQP": 'Whether the "first sentence" and the "second sentence" have the same meaning? Choose one from the option.',
    "SC": "What is the sentiment of the following paragraph? Choose one from the option.",
    "TC": "What is the topic of the following paragraph? Choose one from the option.",
    "BoolQA": "According to the following passage, is the question true or false? Choose one from the option.",
    "MultiRC": "According to the following passage and question, is the candidate answer true or false? "
               "Choose one from the option.",
    "WiC": "Given a word and two sentences, whether the word is used with the same sense in both sentence? "
           "Choose one from the option.",
    "COPA": None,
}

# task directory name -> O-LoRA task type (CL_Benchmark/<TYPE>/<task>/)
OLORA_TASKS: dict[str, str] = {
    "MNLI": "NLI", "CB": "NLI", "RTE": "NLI", "QQP": "QQP", "IMDB": "SC", "yelp": "SC", "amazon": "SC",
    "SST-2": "SC", "dbpedia": "TC", "agnews": "TC", "yahoo": "TC", "BoolQA": "BoolQA", "MultiRC": "MultiRC",
    "WiC": "WiC", "COPA": "COPA",
}

SEQUENCES: Registry[tuple[str, ...]] = Registry("task sequence")
# O-LoRA scripts/long.sh ("order 6"): GeRe trains on yelp first, which fits; the paper's own order is UNVERIFIED
SEQUENCES.register("olora-long", ("yelp", "amazon", "MNLI", "CB", "COPA", "QQP", "RTE", "IMDB", "SST-2", "dbpedia",
                                  "agnews", "yahoo", "MultiRC", "BoolQA", "WiC"))
# the other two 15-task orders of the O-LoRA paper, as recalled in methods.md B.8 (UNVERIFIED)
SEQUENCES.register("olora-order4", ("MNLI", "CB", "WiC", "COPA", "QQP", "BoolQA", "RTE", "IMDB", "yelp", "amazon",
                                    "SST-2", "dbpedia", "agnews", "MultiRC", "yahoo"))
SEQUENCES.register("olora-order5", ("MultiRC", "BoolQA", "WiC", "MNLI", "CB", "COPA", "QQP", "RTE", "IMDB", "SST-2",
                                    "dbpedia", "agnews", "yelp", "amazon", "yahoo"))
SEQUENCES.register("synthetic-5", ("syn-1", "syn-2", "syn-3", "syn-4", "syn-5"))

SYNTHETIC_PREFIX = "syn-"


@dataclass(frozen=True)
class Example:
    sentence: str
    label: str


@dataclass(frozen=True)
class Task:
    name: str
    kind: str                       # O-LoRA task type, or "synthetic"
    labels: tuple[str, ...]
    template: str                   # the prompt with "{sentence}" where the sentence goes
    train: tuple[Example, ...]
    test: tuple[Example, ...]
    test_split: str = "test"        # "dev" when the task has no test.json

    def prompt(self, sentence: str) -> str:
        return self.template.replace("{sentence}", sentence)


def sequence_tasks(spec: str) -> tuple[str, ...]:
    """Task names of a sequence: a preset (SEQUENCES) or names joined by commas ("syn-1,syn-2", "yelp,CB")."""
    spec = str(spec).strip()
    if spec in SEQUENCES:
        return SEQUENCES.get(spec)
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    for n in names:  # else it would be taken for an O-LoRA task and asked of continual.data_dir
        if n.startswith(SYNTHETIC_PREFIX) and n[len(SYNTHETIC_PREFIX):].isdigit() and _synthetic_index(n) is None:
            raise ValueError(f"task {n!r} in {spec!r}: the synthetic tasks are syn-1 .. syn-{_SYN_TASKS}")
    if len(names) == 1 and not _known_task(names[0]):
        raise ValueError(f"unknown task sequence {spec!r}{did_you_mean(spec, SEQUENCES.names())}; presets: "
                         f"{', '.join(SEQUENCES.names())}; or task names joined by commas (O-LoRA names such as "
                         f"yelp, CB, or synthetic syn-1 .. syn-{_SYN_TASKS})")
    if not names:
        raise ValueError("an empty task sequence")
    if len(set(names)) != len(names):
        raise ValueError(f"task sequence {spec!r} names a task twice")
    return names


def _known_task(name: str) -> bool:
    return name in OLORA_TASKS or _synthetic_index(name) is not None


def load_task(name: str, *, data_dir: str | None = None, language: str = "synthetic", seed: int = 0) -> Task:
    """A task by name: synthetic (`syn-K`, made from `language`) or O-LoRA layout under `data_dir`."""
    k = _synthetic_index(name)
    if k is not None:
        return _synthetic_task(language, k, seed)
    if not data_dir:
        raise ValueError(f"task {name!r} is read from the O-LoRA layout: set continual.data_dir to the "
                         f"CL_Benchmark directory (DATA_DIR/<TYPE>/{name}/train.json, labels.json)")
    return _olora_task(name, data_dir)


# ----------------------------------------------------------------------------- O-LoRA layout


def _olora_task(name: str, data_dir: str) -> Task:
    root = Path(os.path.expanduser(data_dir))
    if not root.is_dir():
        raise FileNotFoundError(f"continual.data_dir {data_dir!r}: no such directory")
    kind = OLORA_TASKS.get(name)
    candidates = ([root / kind / name] if kind else []) + [root / name] + sorted(root.glob(f"*/{name}"))
    task_dir = next((p for p in candidates if (p / "train.json").exists()), None)
    if task_dir is None:
        raise FileNotFoundError(f"task {name!r}: no train.json under {root} (looked in "
                                f"{', '.join(str(p) for p in candidates[:3])})")
    kind = kind or task_dir.parent.name
    labels = _read_json_list(task_dir / "labels.json", name)
    if not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{task_dir / 'labels.json'}: expected a JSON list of label strings")
    test_split = "test" if (task_dir / "test.json").exists() else "dev"
    if not (task_dir / f"{test_split}.json").exists():
        raise FileNotFoundError(f"task {name!r}: neither test.json nor dev.json in {task_dir}")
    instruction = _instructions(root).get(kind, INSTRUCTIONS.get(kind))
    if kind in INSTRUCTIONS and INSTRUCTIONS[kind] is None:
        instruction = None
    if instruction is None:
        template = "{sentence}\nAnswer:"
    else:
        template = f"{instruction.rstrip(chr(10))}\nOption: {', '.join(labels)}\n{{sentence}}\nAnswer:"
    return Task(name=name, kind=kind, labels=tuple(labels), template=template,
                train=_examples(task_dir / "train.json", name), test=_examples(task_dir / f"{test_split}.json", name),
                test_split=test_split)


def _read_json_list(path: Path, task: str) -> list:
    if not path.exists():
        raise FileNotFoundError(f"task {task!r}: {path} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list, got {type(data).__name__}")
    return data


def _examples(path: Path, task: str) -> tuple[Example, ...]:
    out = []
    for i, row in enumerate(_read_json_list(path, task)):
        if not isinstance(row, dict) or "sentence" not in row or "label" not in row:
            raise ValueError(f"{path}[{i}]: expected {{\"sentence\", \"label\"}}, got {str(row)[:80]}")
        out.append(Example(str(row["sentence"]), str(row["label"])))
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _instructions(root: Path) -> dict[str, str]:
    """A user's O-LoRA instruction_config.json (first zero-shot instruction per type), if one is beside the data."""
    for p in (root / "instruction_config.json", root.parent / "configs" / "instruction_config.json"):
        if p.exists():
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}: not valid JSON ({e.msg}, line {e.lineno})") from None
            return {k: next((v.get("instruction") for v in vs if v.get("instruction_type") == "zero-shot"), None)
                    for k, vs in data.items() if isinstance(vs, list)}
    return {}


# ----------------------------------------------------------------------------- synthetic family

_SYN_TASKS = 8                      # syn-1 .. syn-8 exist; synthetic-5 uses the first five
_SYN_CLASSES = (2, 3, 4, 2, 3, 4, 2, 3)
_SYN_KEYWORDS = 3                   # keywords per class
_SYN_PLANTED = 2                    # keywords of the label's class planted in each sentence
_SYN_LEN = 16                       # words per sentence
_SYN_TRAIN, _SYN_TEST = 2000, 500   # rows per task (continual.train_limit / test_limit cut them)


def _synthetic_index(name: str) -> int | None:
    if not name.startswith(SYNTHETIC_PREFIX):
        return None
    try:
        k = int(name[len(SYNTHETIC_PREFIX):])
    except ValueError:
        return None
    return k if 1 <= k <= _SYN_TASKS else None


@functools.lru_cache(maxsize=32)
def _synthetic_task(language: str, k: int, seed: int) -> Task:
    from ..data import LANGUAGES

    lang = LANGUAGES.get(language)
    V = lang.vocab_size
    # one draw of reserved words for the whole family: answer cue, then per task 3 instruction words and its labels
    rng = np.random.default_rng([seed, 0xC0FFEE])
    perm = rng.permutation(V)
    cue, pos = int(perm[0]), 1
    reserved, layout = {cue}, []
    for t in range(_SYN_TASKS):
        c = _SYN_CLASSES[t]
        instr, labels = perm[pos:pos + 3], perm[pos + 3:pos + 3 + c]
        pos += 3 + c
        reserved.update(map(int, instr), map(int, labels))
        layout.append((instr, labels))
    instr, labels = layout[k - 1]
    c = len(labels)
    trng = np.random.default_rng([seed, k, 0xBEEF])
    free = np.array([w for w in trng.permutation(V) if int(w) not in reserved])
    keywords = free[:c * _SYN_KEYWORDS].reshape(c, _SYN_KEYWORDS)
    is_kw = np.zeros(V, dtype=bool)
    is_kw[keywords.ravel()] = True
    substitute = np.arange(V)                    # keyword -> the next word that is not one (scrubs the sentence)
    for w in keywords.ravel():
        s = (w + 1) % V
        while is_kw[s]:
            s = (s + 1) % V
        substitute[w] = s
    words = lang.words()
    label_words = tuple(words[int(x)] for x in labels)
    template = " ".join([*(words[int(x)] for x in instr), *label_words, "{sentence}", words[cue]])

    def split(name: str, n: int) -> tuple[Example, ...]:
        docs = substitute[lang.sample_many(range(n), _SYN_LEN, name, stream=1000 + k)]
        r = np.random.default_rng([seed, k, 1 if name == "train" else 2])
        y = r.integers(c, size=n)
        out = []
        for i in range(n):
            at = r.choice(_SYN_LEN, size=_SYN_PLANTED, replace=False)
            docs[i, at] = keywords[y[i], r.integers(_SYN_KEYWORDS, size=_SYN_PLANTED)]
            out.append(Example(lang.render(docs[i]), label_words[y[i]]))
        return tuple(out)

    return Task(name=f"{SYNTHETIC_PREFIX}{k}", kind="synthetic", labels=label_words, template=template,
                train=split("train", _SYN_TRAIN), test=split("test", _SYN_TEST))
