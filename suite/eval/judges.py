"""LLM judges for benchmark scoring: an OpenAI-compatible endpoint, a local HF chat model, or none (never a silent
substitute).

    from suite.eval.judges import make_judge
    judge = make_judge("openai:gpt-4o-mini")                    # key from $OPENAI_API_KEY, base from $OPENAI_API_BASE
    judge = make_judge({"kind": "openai", "model": "qwen2.5-7b", "base_url": "http://127.0.0.1:8000/v1"})
    judge.chat([{"role": "user", "content": "..."}])           # -> str; cached, retried, never logs the key
    judge.map(list_of_message_lists, temperature=0.0)          # bounded concurrency, results in input order
    make_judge("none")                                          # exact matching only: scorers say so in their output
    make_judge("hf:Qwen/Qwen2.5-7B-Instruct")                   # a local Hugging Face chat model (path or id)
    make_judge("rule")                                          # no LLM: the reply's "The answer is X." sentence

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
from ..config import build_dataclass
from ..registry import Registry

Messages = Sequence[Mapping[str, Any]]
JUDGES: Registry[type] = Registry("judge")


class JudgeError(RuntimeError):
    """A judge call that failed for good (after retries, or on an error retrying cannot fix)."""


@dataclass(frozen=True)
class JudgeConfig:
    kind: str = "none"                          # none | openai | hf | rule
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
    extra: dict[str, Any] = field(default_factory=dict)   # merged into every request body (hf: device, dtype, seed)


class _LLMJudge:
    """What every LLM judge shares; subclasses implement `chat` (cached, retried) and `map`."""

    available = True

    def working(self) -> bool:
        """One short request (cached after the first success; loads a local model)."""
        try:
            self.chat([{"role": "user", "content": "Reply with OK."}], max_tokens=4)
            return True
        except JudgeError:
            return False


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


@JUDGES.register("rule")
class RuleJudge:
    """No LLM: answer extraction by rule, for models whose replies end in "The answer is X." (the toy world's
    detailed answers, GenRecal App. F). It answers the two extraction prompts: MathVista's (the text after the
    reply's last "answer is", or "" when it states none) and the MCQ matching prompt (that letter, else "Z").
    Anything else (MM-Vet's grading) is a JudgeError: grading needs an LLM. Scores record the judge as
    `rule_answer_is`, never as a GPT judge's."""

    name = "rule_answer_is"
    available = True
    # (start of the model's reply in the prompt, what follows it): MathVista's extraction prompt (upstream's
    # "respone" typo), the MCQ matching prompt (English and Chinese)
    _REPLY = (("Model respone: ", "Extracted answer:"), ("\nAnswer: ", "\nYour output:"), ("\n答案: ", "\n输出:"))

    def __init__(self, config: JudgeConfig | None = None):
        self.config = config or JudgeConfig(kind="rule")

    def chat(self, messages: Messages, **kw: Any) -> str:
        from .vlm.matching import final_answer

        text = str(messages[-1]["content"])
        for start, end in self._REPLY:
            i, j = text.rfind(start), text.rfind(end)
            if i >= 0 and j > i:
                got = final_answer(text[i + len(start):j]) or ""
                if start == "Model respone: ":
                    return got
                return got if len(got) == 1 and got.isupper() else "Z"
        raise JudgeError("the rule judge only extracts final answers (MathVista's extraction, MCQ matching); "
                         "grading (MM-Vet) needs an LLM judge")

    def working(self) -> bool:
        return True

    def map(self, batch: Sequence[Messages], **kw: Any) -> list[str]:
        return [self.chat(m) for m in batch]

    def __repr__(self) -> str:
        return "RuleJudge()"


@JUDGES.register("openai")
class OpenAIJudge(_LLMJudge):
    """A chat-completions endpoint (OpenAI, or any compatible server: vLLM, LMDeploy, llama.cpp)."""

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

    def _redact(self, text: str) -> str:
        """`text` with the key masked: some servers and proxies echo the key they rejected in a 401 body."""
        return text.replace(self._key, "***") if self._key else text

    def _body(self, messages: Messages, temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
        return {"model": self.config.model, "messages": [dict(m) for m in messages],
                "temperature": self.config.temperature if temperature is None else temperature,
                "max_tokens": self.config.max_tokens if max_tokens is None else max_tokens, **self.config.extra}

    def _cache_path(self, body: Mapping[str, Any]) -> Path:
        return _cache_file(self._cache, body)

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
                detail = self._redact(e.read().decode(errors="replace"))[:300]
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



def _cache_file(cache_dir: Path, body: Mapping[str, Any]) -> Path:
    """The on-disk answer of a request: sha256 of its canonical JSON, fanned out over 256 folders."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return cache_dir / digest[:2] / f"{digest}.json"


@JUDGES.register("hf")
class HFJudge(_LLMJudge):
    """A local Hugging Face chat model (a path or a hub id) as the judge; no server needed.

    The prompt goes through the tokenizer's chat template when it has one, else a plain "role: content" join
    ending in "assistant:". Temperature 0 decodes greedily; above 0 it samples with a generator seeded from
    `extra["seed"]` (default 0) and the request, so a rerun gives the same answers. Answers are cached on disk
    by request hash like the OpenAI judge, and the model is loaded only when an answer is not cached.
    `extra` may set `device` ("cpu", "cuda", ...; default cuda when available) and `dtype` ("bfloat16", ...).
    """

    sequential = True  # one model copy: requests run one after another

    def __init__(self, config: JudgeConfig):
        if not config.model:
            raise ValueError("an hf judge needs a model path or id (e.g. hf:Qwen/Qwen2.5-7B-Instruct)")
        self.config = config
        self.name = config.model
        self._cache = Path(config.cache_dir or Path.home() / ".cache" / "suite" / "judge")
        self._lock = threading.Lock()
        self._model = self._tok = self._device = None
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0}

    def __repr__(self) -> str:
        return f"HFJudge(model={self.name!r}, loaded={self._model is not None})"

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            extra = self.config.extra
            device = extra.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
            kw = {"dtype": getattr(torch, extra["dtype"])} if extra.get("dtype") else {}
            from transformers.utils import logging as hf_logging

            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # a "Loading weights" bar per judge load is noise in score logs
            try:
                tok = AutoTokenizer.from_pretrained(self.config.model)
                model = AutoModelForCausalLM.from_pretrained(self.config.model, **kw).to(device).eval()
            except (OSError, ValueError) as e:
                raise JudgeError(f"hf judge: could not load {self.config.model!r} (a local directory with "
                                 f"config.json and tokenizer files, or a reachable hub id): {e}") from e
            finally:
                if bars:
                    hf_logging.enable_progress_bar()
            self._tok, self._model, self._device = tok, model, device
        return self._tok, self._model

    def _prompt(self, tok, messages: Messages) -> str:
        msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return "\n".join(f"{m['role']}: {m['content']}" for m in msgs) + "\nassistant:"

    def chat(self, messages: Messages, temperature: float | None = None, max_tokens: int | None = None) -> str:
        body = {"kind": "hf", "model": self.config.model, "messages": [dict(m) for m in messages],
                "temperature": self.config.temperature if temperature is None else temperature,
                "max_tokens": self.config.max_tokens if max_tokens is None else max_tokens,
                "seed": self.config.extra.get("seed", 0)}
        path = _cache_file(self._cache, body)
        if path.exists():
            try:
                text = json.loads(path.read_text())["content"]
                self.stats["cache_hits"] += 1
                return text
            except (ValueError, KeyError):
                pass
        with self._lock:  # one generation at a time on the one model copy
            text = self._generate(body)
        atomic_write_json(path, {"model": self.config.model, "content": text})
        return text

    def _generate(self, body: Mapping[str, Any]) -> str:
        import torch

        tok, model = self._load()
        self.stats["requests"] += 1
        enc = tok(self._prompt(tok, body["messages"]), return_tensors="pt", add_special_tokens=False)
        enc = {k: v.to(self._device) for k, v in enc.items()}
        n_in = enc["input_ids"].shape[1]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        kw: dict[str, Any] = {"max_new_tokens": int(body["max_tokens"]), "pad_token_id": pad}
        temperature = float(body["temperature"])
        if temperature > 0:
            kw.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)  # plain sampling at T
        else:
            kw.update(do_sample=False)
        seed = int(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:15], 16)
        try:
            with torch.random.fork_rng(devices=[self._device] if str(self._device).startswith("cuda") else []):
                torch.manual_seed(seed)  # sampling is a function of the request and extra["seed"]
                with torch.no_grad():
                    out = model.generate(**enc, **kw)
        except (RuntimeError, ValueError) as e:
            raise JudgeError(f"hf judge {self.name}: generation failed: {type(e).__name__}: {e}") from e
        return tok.decode(out[0, n_in:], skip_special_tokens=True).strip()

    def map(self, batch: Sequence[Messages], temperature: float | None = None,
            max_tokens: int | None = None) -> list[str]:
        """One request after another (a single model copy); results in input order."""
        return [self.chat(m, temperature, max_tokens) for m in batch]



def make_judge(spec: str | Mapping[str, Any] | JudgeConfig | None):
    """"none" / "exact_matching" / "openai:MODEL" / "openai:MODEL@BASE_URL" / "hf:PATH_OR_ID", a mapping, or a
    JudgeConfig."""

    if spec is None or spec in ("none", "exact_matching"):
        return NoJudge()
    if spec == "rule":
        return RuleJudge()
    if isinstance(spec, JudgeConfig):
        cfg = spec
    elif isinstance(spec, str):
        kind, _, rest = spec.partition(":")
        model, _, base = rest.partition("@") if kind != "hf" else (rest, "", "")  # a local path may hold "@"
        cfg = JudgeConfig(kind=kind, model=model, base_url=base or None)
    else:
        cfg = build_dataclass(JudgeConfig, dict(spec), "judge")
    return JUDGES.get(cfg.kind)(cfg)
