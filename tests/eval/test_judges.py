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

    def __init__(self, fail_first=0, fail_status=429, delay=0.0):
        self.requests, self.auth, self.fail_first, self.fail_status, self.delay = [], [], fail_first, fail_status, delay
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
                        return self._send(server.fail_status, {"error": {"message": "try later"}})
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
