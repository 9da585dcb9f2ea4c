"""LLM judges for benchmark scoring: an OpenAI-compatible chat endpoint, or none (never a silent substitute).

    from suite.eval.judges import make_judge
    judge = make_judge("openai:gpt-4o-mini")                    # key from $OPENAI_API_KEY, base from $OPENAI_API_BASE
    judge = make_judge({"kind": "openai", "model": "qwen2.5-7b", "base_url": "http://127.0.0.1:8000/v1"})
    judge.chat([{"role": "user", "content": "..."}])           # -> str; cached, retried, never logs the key
    judge.map(list_of_message_lists, temperature=0.0)          # bounded concurrency, results in input order
    make_judge("none")                                          # exact matching only: scorers say so in their output

Every score records `judge.name`. A local vLLM / LMDeploy / llama.cpp server works through the same client
(VLMEvalKit's LOCAL_LLM route). Responses are cached on disk by the hash of the request (model, messages,
temperature, max_tokens), so re-scoring is free and an interrupted run resumes; calls are retried with
exponential back-off on 429, 5xx and connection errors, and not retried on other 4xx (a bad key or model
will not get better).
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .._io import atomic_write_json
from ..registry import Registry

Messages = Sequence[Mapping[str, Any]]
JUDGES: Registry[type] = Registry("judge")


class JudgeError(RuntimeError):
    """A judge call that failed for good (after retries, or on an error retrying cannot fix)."""


@dataclass(frozen=True)
class JudgeConfig:
    kind: str = "none"                          # none | openai
    model: str = ""
    base_url: str | None = None                 # ".../v1"; default $OPENAI_API_BASE or https://api.openai.com/v1
    api_key_env: str = "OPENAI_API_KEY"         # the key is read from this variable, never stored in configs
    temperature: float = 0.0
    max_tokens: int = 1024
    timeout_s: float = 60.0
    retries: int = 5
    backoff_s: float = 1.0                      # sleep backoff_s * 2**attempt (capped at 30 s) between tries
    concurrency: int = 8
    cache_dir: str | None = None                # default ~/.cache/suite/judge
    extra: dict[str, Any] = field(default_factory=dict)   # merged into every request body


@JUDGES.register("none")
class NoJudge:
    """No LLM: scorers fall back to their exact-matching rules and label the result accordingly."""

    name = "exact_matching"
    available = False

    def __init__(self, config: JudgeConfig | None = None):
        self.config = config or JudgeConfig()

    def chat(self, messages: Messages, **kw: Any) -> str:
        raise JudgeError("no judge configured (judge: none); this score needs an LLM judge")

    def map(self, batch: Sequence[Messages], **kw: Any) -> list[str]:
        return [self.chat(m) for m in batch]

    def __repr__(self) -> str:
        return "NoJudge()"


@JUDGES.register("openai")
class OpenAIJudge:
    """A chat-completions endpoint (OpenAI, or any compatible server: vLLM, LMDeploy, llama.cpp)."""

    available = True

    def __init__(self, config: JudgeConfig):
        if not config.model:
            raise ValueError("an openai judge needs a model name (e.g. openai:gpt-4o-mini)")
        self.config = config
        base = config.base_url or os.environ.get("OPENAI_API_BASE") or "https://api.openai.com/v1"
        base = base.rstrip("/")
        # VLMEvalKit's OPENAI_API_BASE is the full route; accept both forms
        self.url = base if base.endswith("/chat/completions") else base + "/chat/completions"
        self.name = config.model
        self._key = os.environ.get(config.api_key_env) or None
        self._cache = Path(config.cache_dir or Path.home() / ".cache" / "suite" / "judge")
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0}

    def __repr__(self) -> str:  # the key stays out of reprs, logs and tracebacks
        return f"OpenAIJudge(model={self.name!r}, url={self.url!r}, key={'set' if self._key else 'unset'})"

    def _body(self, messages: Messages, temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
        return {"model": self.config.model, "messages": [dict(m) for m in messages],
                "temperature": self.config.temperature if temperature is None else temperature,
                "max_tokens": self.config.max_tokens if max_tokens is None else max_tokens, **self.config.extra}

    def _cache_path(self, body: Mapping[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return self._cache / digest[:2] / f"{digest}.json"

    def chat(self, messages: Messages, temperature: float | None = None, max_tokens: int | None = None) -> str:
        body = self._body(messages, temperature, max_tokens)
        path = self._cache_path(body)
        if path.exists():
            try:
                text = json.loads(path.read_text())["content"]
                with self._lock:
                    self.stats["cache_hits"] += 1
                return text
            except (ValueError, KeyError):
                pass  # a damaged cache entry is re-requested
        text = self._post(body)
        atomic_write_json(path, {"model": body["model"], "content": text})
        return text

    def _post(self, body: Mapping[str, Any]) -> str:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        last = ""
        for attempt in range(self.config.retries + 1):
            if attempt:
                with self._lock:
                    self.stats["retries"] += 1
                time.sleep(min(self.config.backoff_s * 2 ** (attempt - 1), 30.0))
            with self._lock:
                self.stats["requests"] += 1
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.config.timeout_s) as resp:
                    out = json.loads(resp.read().decode())
                return out["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:300]
                last = f"HTTP {e.code} from {self.url}: {detail}"
                if e.code != 429 and e.code < 500:  # bad request, key or model: retrying will not help
                    raise JudgeError(f"judge {self.name}: {last}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)} ({self.url})"
            except (ValueError, KeyError, IndexError) as e:
                last = f"malformed response: {type(e).__name__}: {e}"
        raise JudgeError(f"judge {self.name}: gave up after {self.config.retries + 1} tries; last: {last}")

    def map(self, batch: Sequence[Messages], temperature: float | None = None,
            max_tokens: int | None = None) -> list[str]:
        """Judge many requests, at most `concurrency` in flight; results in input order."""
        with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
            return list(pool.map(lambda m: self.chat(m, temperature, max_tokens), batch))

    def working(self) -> bool:
        """One cheap request (cached after the first success)."""
        try:
            self.chat([{"role": "user", "content": "Reply with OK."}], max_tokens=4)
            return True
        except JudgeError:
            return False


def make_judge(spec: str | Mapping[str, Any] | JudgeConfig | None):
    """"none" / "exact_matching" / "openai:MODEL" / "openai:MODEL@BASE_URL", a mapping, or a JudgeConfig."""
    from ..config import build_dataclass

    if spec is None or spec in ("none", "exact_matching"):
        return NoJudge()
    if isinstance(spec, JudgeConfig):
        cfg = spec
    elif isinstance(spec, str):
        kind, _, rest = spec.partition(":")
        model, _, base = rest.partition("@")
        cfg = JudgeConfig(kind=kind, model=model, base_url=base or None)
    else:
        cfg = build_dataclass(JudgeConfig, dict(spec), "judge")
    return JUDGES.get(cfg.kind)(cfg)
