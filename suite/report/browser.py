"""Open a generated HTML report in a real headless Chromium and report what went wrong.

    python -c "import suite.report.browser as b; print(b.check_page('reports/quickstart/index.html', 'shot.png'))"

`check_page` starts the system Chromium (see `find_chromium`; Debian: `apt-get install chromium`)
headless with a throw-away profile, loads the page from its file:// URL, waits for the load event
(and for every <img> to settle, lazy ones included), and returns::

    {"url", "title",
     "console_errors": [str],   # console.error(...), Log entries of level error (e.g. "Failed to
                                #   load resource: ..."), and uncaught exceptions
     "page_errors": [str],      # uncaught exceptions only
     "failed_requests": [str],  # "URL (net::ERR_...)" or "URL (HTTP 404)"
     "images": int,             # number of <img> elements
     "broken_images": [str],    # src of each <img> with complete == false or naturalWidth == 0
     "screenshot": str | None,  # full-page PNG, when `screenshot_path` is given
     "screenshot_bytes": int}

Why a small Chrome DevTools Protocol client on `websocket-client` rather than Playwright: the
checks need five CDP domains and about a dozen messages; Playwright would add a ~45 MB wheel plus
a Node driver, is only tested against its own pinned browser builds (which cannot be downloaded
here), and drives a distro Chromium through `executable_path` on a best-effort basis, so a Debian
Chromium update can break it. The raw protocol over one websocket is stable across Chromium
versions and the only extra dependency is the pure-Python `websocket-client` (in the `test` extra).

Flags: `--no-sandbox` is required as root (Chromium refuses to start otherwise) and in containers
without user namespaces; `--disable-dev-shm-usage` because container /dev/shm is often tiny;
`--remote-debugging-port=0` lets Chromium pick a free port, which it writes to
`<user-data-dir>/DevToolsActivePort` (no race between choosing a port and binding it).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["find_chromium", "check_page"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--mute-audio",
    "--hide-scrollbars",
    "--password-store=basic",
    "--use-mock-keychain",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)

# Runs in the page after the load event: make lazy images load, wait (bounded) until every <img>
# has loaded or failed, then describe them.
_IMAGES_JS = """(async (waitMs) => {
  const imgs = Array.from(document.images);
  for (const im of imgs) if (im.loading === 'lazy') im.loading = 'eager';
  const settle = im => im.complete ? null : new Promise(r => {
    im.addEventListener('load', r, {once: true});
    im.addEventListener('error', r, {once: true});
  });
  await Promise.race([Promise.all(imgs.map(settle)), new Promise(r => setTimeout(r, waitMs))]);
  return {title: document.title,
          images: imgs.map(im => ({src: im.getAttribute('src') || im.currentSrc || '',
                                   complete: im.complete, naturalWidth: im.naturalWidth}))};
})(%d)"""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable: $SUITE_CHROMIUM, else the first of
    chromium, chromium-browser, google-chrome on PATH; None if there is none. A set but unusable
    $SUITE_CHROMIUM gives None too (no silent fallback to another browser)."""
    env = os.environ.get("SUITE_CHROMIUM", "").strip()
    if env:
        return shutil.which(env) or (env if os.path.isfile(env) and os.access(env, os.X_OK) else None)
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class _CDP:
    """Minimal synchronous CDP client over the browser websocket, flattened sessions."""

    def __init__(self, ws_url: str, deadline: float):
        import websocket  # websocket-client

        self._ws = websocket.create_connection(
            ws_url, timeout=max(1.0, deadline - time.monotonic()), suppress_origin=True,
            enable_multithread=False,
        )
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.deadline = deadline

    def close(self) -> None:
        try:
            self._ws.close()
        except Exception:
            pass

    def _recv(self, until: float) -> dict[str, Any] | None:
        import websocket

        left = min(until, self.deadline) - time.monotonic()
        if left <= 0:
            return None
        self._ws.settimeout(left)
        try:
            raw = self._ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        msg = json.loads(raw)
        if "id" not in msg:
            if msg.get("method") in ("Inspector.targetCrashed", "Target.targetCrashed"):
                raise RuntimeError(f"chromium: page crashed ({msg.get('method')})")
            self.events.append(msg)
        return msg

    def send_nowait(self, method: str, params: dict | None = None) -> None:
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params or {}}))

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._ws.send(json.dumps(msg))
        while True:
            reply = self._recv(self.deadline)
            if reply is None:
                raise TimeoutError(f"chromium: no reply to {method} before the deadline")
            if reply.get("id") == mid:
                if "error" in reply:
                    raise RuntimeError(f"chromium: {method} failed: {reply['error']}")
                return reply.get("result", {})

    def wait_for(self, pred, until: float | None = None) -> dict | None:
        """First event (already received or arriving before `until`) matching pred, else None."""
        for ev in self.events:
            if pred(ev):
                return ev
        until = self.deadline if until is None else until
        while time.monotonic() < min(until, self.deadline):
            ev = self._recv(until)
            if ev is not None and "id" not in ev and pred(ev):
                return ev
        return None

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < min(end, self.deadline):
            self._recv(end)


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip()
    except OSError:
        return ""


def _start(exe: str, tmp: Path, width: int, height: int, deadline: float):
    """Start chromium; return (Popen, browser websocket URL)."""
    profile = tmp / "profile"
    profile.mkdir()
    errlog = tmp / "stderr.log"
    cmd = [exe, *_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
           "about:blank"]
    with open(errlog, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
    port_file = profile / "DevToolsActivePort"
    while True:
        if port_file.exists():
            lines = port_file.read_text().split("\n")
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
                return proc, f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
        rc = proc.poll()
        if rc is not None:
            raise RuntimeError(f"chromium ({exe}) exited with code {rc} before DevTools came up; "
                               f"stderr tail:\n{_tail(errlog)}")
        if time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"chromium ({exe}) did not open its DevTools port in time; "
                               f"stderr tail:\n{_tail(errlog)}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen, grace: float = 0.0) -> None:
    """Kill chromium and everything it spawned (its own process group), after giving it
    `grace` seconds to exit by itself (it does, quickly, after Browser.close)."""
    if grace > 0 and proc.poll() is None:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # renderers/zygotes share the group
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _remote_text(obj: dict) -> str:
    """A console.error argument (a CDP RemoteObject) as text."""
    if "value" in obj:
        v = obj["value"]
        return v if isinstance(v, str) else json.dumps(v)
    prev = obj.get("preview")
    if prev and prev.get("type") == "object" and prev.get("subtype") not in ("error", "node"):
        items = [p.get("value", "") if prev.get("subtype") == "array"
                 else f"{p.get('name')}: {p.get('value', '')}" for p in prev.get("properties", [])]
        body = ", ".join(items) + (", ..." if prev.get("overflow") else "")
        return f"[{body}]" if prev.get("subtype") == "array" else "{" + body + "}"
    return str(obj.get("description") or obj.get("unserializableValue") or obj.get("type", ""))


def _exception_text(details: dict) -> str:
    """'Uncaught ReferenceError: x is not defined\n    at ...' (stack included when known)."""
    exc = details.get("exception") or {}
    desc = exc.get("description") or (_remote_text(exc) if exc else "")
    prefix = details.get("text") or "Uncaught"
    text = f"{prefix} {desc}".strip() if desc else prefix
    if "\n    at " not in text and details.get("url"):
        text += f"\n    at {details['url']}:{details.get('lineNumber', 0) + 1}"
    return text


def check_page(html_path, screenshot_path=None, width: int = 1280, height: int = 2000,
               timeout_s: float = 60) -> dict:
    """Load `html_path` in headless Chromium; report console errors, uncaught exceptions, failed
    requests and broken images, and write a full-page PNG to `screenshot_path` if given.
    Raises FileNotFoundError for a missing page, RuntimeError if Chromium is missing, fails to
    start or the page crashes, TimeoutError if the page does not load within `timeout_s`."""
    page = Path(html_path).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"no such page: {page}")
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("no Chromium found: set SUITE_CHROMIUM or install one "
                           "(Debian/Ubuntu: apt-get install -y chromium)")
    try:
        import websocket  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError("check_page needs `websocket-client` (pip install websocket-client, "
                           "a dependency of suite: pip install -e .)") from e

    url = page.as_uri()
    deadline = time.monotonic() + timeout_s
    tmp = Path(tempfile.mkdtemp(prefix="suite-chromium-"))
    proc = None
    cdp = None
    try:
        proc, ws_url = _start(exe, tmp, width, height, deadline)
        cdp = _CDP(ws_url, deadline)
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.send(f"{domain}.enable", session=sid)
        cdp.send("Page.setLifecycleEventsEnabled", {"enabled": True}, session=sid)
        cdp.send("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                 session=sid)
        start = len(cdp.events)  # nothing before the navigation belongs to the page
        nav = cdp.send("Page.navigate", {"url": url}, session=sid)
        if nav.get("errorText"):
            raise RuntimeError(f"chromium could not open {url}: {nav['errorText']}")
        loader, frame = nav.get("loaderId"), nav.get("frameId")

        def is_load(ev: dict) -> bool:
            p = ev.get("params", {})
            return (ev.get("sessionId") == sid and ev.get("method") == "Page.lifecycleEvent"
                    and p.get("name") == "load" and p.get("frameId") == frame
                    and (loader is None or p.get("loaderId") == loader))

        if cdp.wait_for(is_load) is None:
            raise TimeoutError(f"{url} did not fire its load event within {timeout_s} s")

        wait_ms = int(max(0.0, min(10.0, deadline - time.monotonic() - 1)) * 1000)
        res = cdp.send("Runtime.evaluate", {"expression": _IMAGES_JS % wait_ms,
                                            "awaitPromise": True, "returnByValue": True},
                       session=sid)
        if "exceptionDetails" in res:
            raise RuntimeError(f"image probe failed: {_exception_text(res['exceptionDetails'])}")
        info = res["result"]["value"]
        cdp.drain(0.2)  # errors from timers/handlers that run right after load

        shot_bytes = 0
        if screenshot_path is not None:
            metrics = cdp.send("Page.getLayoutMetrics", session=sid)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            clip = {"x": 0, "y": 0, "scale": 1,
                    "width": max(1, int(max(size["width"], width) + 0.999)),
                    "height": max(1, int(size["height"] + 0.999))}
            shot = cdp.send("Page.captureScreenshot",
                            {"format": "png", "captureBeyondViewport": True, "clip": clip},
                            session=sid)
            data = base64.b64decode(shot["data"])
            out = Path(screenshot_path)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            shot_bytes = len(data)

        console_errors: list[str] = []
        page_errors: list[str] = []
        failed: list[str] = []
        req_urls: dict[str, str] = {}
        for ev in cdp.events[start:]:
            if ev.get("sessionId") != sid:
                continue
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                console_errors.append(" ".join(_remote_text(a) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                console_errors.append(e.get("text", "") + (f" ({e['url']})" if e.get("url") else ""))
            elif m == "Runtime.exceptionThrown":
                text = _exception_text(p.get("exceptionDetails", {}))
                console_errors.append(text)
                page_errors.append(text)
            elif m == "Network.requestWillBeSent":
                req_urls[p["requestId"]] = p.get("request", {}).get("url", "")
            elif m == "Network.loadingFailed" and not p.get("canceled"):
                failed.append(f"{req_urls.get(p['requestId'], '?')} ({p.get('errorText', 'failed')})")
            elif m == "Network.responseReceived" and p.get("response", {}).get("status", 0) >= 400:
                r = p["response"]
                failed.append(f"{r.get('url', '?')} (HTTP {r['status']})")

        images = info["images"]
        return {
            "url": url,
            "title": info["title"],
            "console_errors": console_errors,
            "page_errors": page_errors,
            "failed_requests": failed,
            "images": len(images),
            "broken_images": [im["src"] for im in images
                              if not im["complete"] or not im["naturalWidth"]],
            "screenshot": str(screenshot_path) if screenshot_path is not None else None,
            "screenshot_bytes": shot_bytes,
        }
    finally:
        closed = False
        if cdp is not None:
            try:
                cdp.send_nowait("Browser.close")
                closed = True
            except Exception:
                pass
            cdp.close()
        if proc is not None:
            _stop(proc, grace=2.0 if closed else 0.0)
        shutil.rmtree(tmp, ignore_errors=True)
