"""A scripted chat-completions judge on loopback: replies come from a Python function of the request."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class ScriptedJudge:
    """POST /v1/chat/completions -> {"choices": [{"message": {"content": reply(body)}}]}; records every body.

    `reply(body)` returns the text, or raises to answer HTTP 500 (a failed call)."""

    def __init__(self, reply):
        self.reply, self.requests, self.lock = reply, [], threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                try:
                    code, obj = 200, {"choices": [{"message": {"role": "assistant",
                                                               "content": server.reply(body)}}]}
                except Exception as e:  # noqa: BLE001 - the script decides to fail this call
                    code, obj = 500, {"error": {"message": str(e)}}
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def prompts(self):
        return [r["messages"][-1]["content"] for r in self.requests]

    def judge(self, tmp_path, name="judge-model", **kw):
        return {"kind": "openai", "model": name, "base_url": self.url, "cache_dir": str(tmp_path / "judge-cache"),
                "backoff_s": 0.01, "retries": 0, **kw}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_judge():
    servers = []

    def make(reply):
        servers.append(ScriptedJudge(reply))
        return servers[-1]

    yield make
    for s in servers:
        s.close()
