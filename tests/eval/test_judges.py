"""The OpenAI-compatible judge client against a real HTTP server on loopback."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from suite.eval.judges import JudgeError, NoJudge, OpenAIJudge, make_judge
from suite.registry import UnknownNameError


class ChatServer:
    """/v1/chat/completions: answers "echo: <last user message>", can fail the first N calls with a status,
    sleeps `delay` per call and records requests, headers and the peak number of calls in flight."""

    def __init__(self, fail_first=0, fail_status=429, delay=0.0, echo_auth=False):
        self.requests, self.auth, self.fail_first, self.fail_status, self.delay = [], [], fail_first, fail_status, delay
        self.echo_auth = echo_auth  # failures quote the Authorization header, as some proxies do
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    n = len(server.requests)
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                try:
                    time.sleep(server.delay)
                    if self.path != "/v1/chat/completions":
                        return self._send(404, {"error": {"message": f"no route {self.path}"}})
                    if n <= server.fail_first:
                        msg = f"bad key: {self.headers.get('Authorization')}" if server.echo_auth else "try later"
                        return self._send(server.fail_status, {"error": {"message": msg}})
                    text = "echo: " + body["messages"][-1]["content"]
                    self._send(200, {"choices": [{"message": {"role": "assistant", "content": text}}]})
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def make(**kw):
        servers.append(ChatServer(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def judge(url, tmp_path, **kw):
    return make_judge({"kind": "openai", "model": "judge-model", "base_url": url, "cache_dir": str(tmp_path / "cache"),
                       "backoff_s": 0.01, **kw})


def test_chat_sends_the_request_and_caches_the_answer(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    s = server()
    j = judge(s.url, tmp_path)
    msgs = [{"role": "user", "content": "Is 2 + 2 = 4?"}]
    assert j.chat(msgs) == "echo: Is 2 + 2 = 4?"
    assert s.requests[0]["model"] == "judge-model" and s.requests[0]["temperature"] == 0.0
    assert s.requests[0]["messages"] == msgs and s.auth == ["Bearer sk-secret-123"]
    assert j.chat(msgs) == "echo: Is 2 + 2 = 4?" and len(s.requests) == 1 and j.stats["cache_hits"] == 1
    j.chat(msgs, temperature=0.7)  # a different request is not a cache hit (MM-Vet retries at rising T)
    assert len(s.requests) == 2 and s.requests[1]["temperature"] == 0.7
    # a fresh client over the same cache directory re-uses the answers (an interrupted run resumes)
    s2 = server()
    again = judge(s2.url, tmp_path)
    assert again.chat(msgs) == "echo: Is 2 + 2 = 4?" and s2.requests == []
    # the key is never shown
    assert "sk-secret" not in repr(j) and "key=set" in repr(j)


def test_retries_with_backoff_on_429_and_5xx_then_succeeds(server, tmp_path):
    s = server(fail_first=2, fail_status=503)
    j = judge(s.url, tmp_path, retries=3)
    assert j.chat([{"role": "user", "content": "x"}]) == "echo: x"
    assert len(s.requests) == 3 and j.stats["retries"] == 2


def test_gives_up_clearly_and_does_not_retry_client_errors(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    s = server(fail_first=10, fail_status=429)
    with pytest.raises(JudgeError, match="gave up after 3 tries; last: HTTP 429") as e:
        judge(s.url, tmp_path, retries=2).chat([{"role": "user", "content": "x"}])
    assert "sk-secret" not in str(e.value)
    s = server(fail_first=10, fail_status=401)
    with pytest.raises(JudgeError, match="HTTP 401"):
        judge(s.url, tmp_path, retries=5).chat([{"role": "user", "content": "y"}])
    assert len(s.requests) == 1
    with pytest.raises(JudgeError, match="URLError|ConnectionRefused|gave up"):
        judge("http://127.0.0.1:9/v1", tmp_path, retries=1, timeout_s=2).chat([{"role": "user", "content": "z"}])


def test_a_server_that_echoes_the_key_does_not_leak_it(server, tmp_path, monkeypatch):
    # regression: the HTTP error body went into JudgeError verbatim, key included when the server quoted it
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    for status in (401, 503):
        s = server(fail_first=10, fail_status=status, echo_auth=True)
        with pytest.raises(JudgeError, match=r"bad key: Bearer \*\*\*") as e:
            judge(s.url, tmp_path, retries=1).chat([{"role": "user", "content": f"q{status}"}])
        assert "sk-secret" not in str(e.value) and s.auth[0] == "Bearer sk-secret-123"


def test_map_keeps_order_and_bounds_concurrency(server, tmp_path):
    s = server(delay=0.05)
    j = judge(s.url, tmp_path, concurrency=3)
    batch = [[{"role": "user", "content": f"q{i}"}] for i in range(12)]
    assert j.map(batch) == [f"echo: q{i}" for i in range(12)]
    assert 1 < s.peak <= 3


def test_specs_and_no_judge(tmp_path):
    j = make_judge("openai:some-model@http://127.0.0.1:1/v1")
    assert isinstance(j, OpenAIJudge) and j.name == "some-model" and j.url == "http://127.0.0.1:1/v1/chat/completions"
    for spec in (None, "none", "exact_matching"):
        nj = make_judge(spec)
        assert isinstance(nj, NoJudge) and nj.name == "exact_matching" and not nj.available
    with pytest.raises(JudgeError, match="needs an LLM judge"):
        make_judge("none").chat([{"role": "user", "content": "x"}])
    with pytest.raises(UnknownNameError, match="did you mean 'openai'"):
        make_judge("opneai:m")
    with pytest.raises(ValueError, match="needs a model"):
        make_judge("openai:")


# ------------------------------------------------------------------------------------------ HF judge


@pytest.fixture(scope="module")
def tiny_judge_dir(tmp_path_factory):
    """A tiny random llama and a byte-level BPE saved in the HF layout: plumbing only, its answers are noise."""
    from suite.data.tokenizers import train_bpe
    from suite.models import build_model, save_pretrained

    root = tmp_path_factory.mktemp("hf-judge")
    tok = train_bpe(["the correctness score is 0.5 or 1.0; extracted answer: 14"] * 20, vocab_size=300)
    save_pretrained(build_model("tiny-0.01M", vocab_size=len(tok), seed=0), root / "judge", tok)
    return root / "judge"


def test_hf_judge_spec_cache_and_greedy_determinism(tiny_judge_dir, tmp_path):
    from suite.eval.judges import HFJudge

    j = make_judge(f"hf:{tiny_judge_dir}")
    assert isinstance(j, HFJudge) and j.name == str(tiny_judge_dir) and j.available
    cfg = {"kind": "hf", "model": str(tiny_judge_dir), "cache_dir": str(tmp_path / "c"), "max_tokens": 6}
    j = make_judge(cfg)
    msgs = [{"role": "user", "content": "Score this: 0.5?"}]
    first = j.chat(msgs)
    assert j._model is not None and j.stats["requests"] == 1 and isinstance(first, str)
    assert j.chat(msgs) == first and j.stats["cache_hits"] == 1
    assert j.map([msgs, msgs]) == [first, first]
    fresh = make_judge(cfg)  # re-scoring from the cache never loads the model
    assert fresh.chat(msgs) == first and fresh._model is None and fresh.stats["requests"] == 0
    uncached = make_judge({**cfg, "cache_dir": str(tmp_path / "c2")})
    assert uncached.chat(msgs) == first  # greedy at temperature 0: the same text every time
    assert uncached.working() and "loaded=True" in repr(uncached)


def test_hf_judge_seeded_sampling_and_prompt_format(tiny_judge_dir, tmp_path):
    cfg = {"kind": "hf", "model": str(tiny_judge_dir), "max_tokens": 12}
    msgs = [{"role": "system", "content": "Grade."}, {"role": "user", "content": "x = -1 | 0.5"}]
    a = make_judge({**cfg, "cache_dir": str(tmp_path / "a")}).chat(msgs, temperature=1.5)
    b = make_judge({**cfg, "cache_dir": str(tmp_path / "b")}).chat(msgs, temperature=1.5)
    others = {make_judge({**cfg, "cache_dir": str(tmp_path / f"s{k}"), "extra": {"seed": k}})
              .chat(msgs, temperature=1.5) for k in range(1, 4)}
    assert a == b and len(others | {a}) > 1  # sampling is seeded by extra["seed"] and the request
    j = make_judge({**cfg, "cache_dir": str(tmp_path / "p")})
    tok, _ = j._load()
    assert getattr(tok, "chat_template", None) is None
    assert j._prompt(tok, msgs) == "system: Grade.\nuser: x = -1 | 0.5\nassistant:"
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    assert j._prompt(tok, msgs) == "<|system|>Grade.<|user|>x = -1 | 0.5<|assistant|>"


def test_hf_judge_errors_and_scoring(tiny_judge_dir, tmp_path):
    missing = make_judge({"kind": "hf", "model": str(tmp_path / "nope"), "cache_dir": str(tmp_path / "c")})
    with pytest.raises(JudgeError, match="hf judge: could not load"):
        missing.chat([{"role": "user", "content": "x"}])
    assert not missing.working()
    with pytest.raises(ValueError, match="needs a model path or id"):
        make_judge("hf:")
    from suite.eval.vlm import load_dataset, score, write_vlm_fixture

    write_vlm_fixture(tmp_path, "mmvet", n=2)
    preds = load_dataset("mmvet", tmp_path).drop(columns=["image"]).assign(prediction="a red circle")
    judge = {"kind": "hf", "model": str(tiny_judge_dir), "cache_dir": str(tmp_path / "c"), "max_tokens": 4}
    res = score("mmvet", preds, data_root=tmp_path, judge=judge, out_dir=tmp_path, model_name="m")
    assert res["judge"] == str(tiny_judge_dir) and res["status"] == "scored" and res["n"] == 2
    assert (tmp_path / "m_MMVet_judge.xlsx").exists()  # a local path is named by its folder in file names
