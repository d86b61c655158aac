"""Open an HTML file in headless Chromium and take a screenshot, collecting console errors.

Used by the test suite (a report must render in a real browser) and to make the screenshots in docs/. It
speaks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (file descriptors 3 and 4 of the
browser process), so it needs no package beyond the standard library; only a Chromium binary (Debian:
``apt-get install chromium``). The browser runs headless, without GPU, sandbox (required as root),
background networking or first-run tasks, in a fresh profile directory that is deleted afterwards.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on PATH (``$NASFORGE_CHROMIUM`` first), or None."""
    env = os.environ.get("NASFORGE_CHROMIUM")
    if env:
        return shutil.which(env) or (env if Path(env).is_file() else None)
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Screenshot:
    """A page as the browser rendered it: PNG bytes of ``width`` x ``height`` CSS pixels (device scale 1),
    the page's full content height, and every console error, uncaught exception or error log entry."""

    png: bytes
    width: int
    height: int
    content_height: int
    errors: list[str] = field(default_factory=list)


class _Pipe:
    """CDP over the two pipes: JSON messages terminated by a NUL byte."""

    def __init__(self, write_fd: int, read_fd: int, proc: subprocess.Popen) -> None:
        self.w, self.r, self.proc = write_fd, read_fd, proc
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        want = self.next_id
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == want:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error'].get('message')}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == name:
                return e
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if "method" in m:
                self.events.append(m)
                if m["method"] == name:
                    return m

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the browser did not answer in time")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"the browser exited (code {self.proc.poll()})")
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)


def screenshot(html_file: str | Path, width: int = 1200, height: int = 900, full_page: bool = False,
               timeout: float = 60.0, chromium: str | None = None) -> Screenshot:
    """Load `html_file` (a local file) in headless Chromium at a `width` x `height` viewport and capture it
    (the whole page with `full_page`). Raises UserError if no Chromium is found or the file is missing."""
    exe = chromium or find_chromium()
    if exe is None:
        raise UserError("no Chromium found (install it: apt-get install chromium, or set NASFORGE_CHROMIUM)")
    path = Path(html_file).resolve()
    if not path.is_file():
        raise UserError(f"{path} not found")
    profile = tempfile.mkdtemp(prefix="nasforge-chromium-")
    # two pipes, moved to descriptors >= 10 so the shell's redirections below cannot collide with them
    to_browser_r, to_browser_w = (_high(fd) for fd in os.pipe())
    from_browser_r, from_browser_w = (_high(fd) for fd in os.pipe())
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--mute-audio", "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
    # the browser reads commands on fd 3 and answers on fd 4: bash (which, unlike dash, redirects descriptors
    # above 9) sets them up and execs it; no preexec_fn, which is unsafe in a process with threads
    shell = shutil.which("bash") or "/bin/bash"
    script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
    proc = subprocess.Popen([shell, "-c", script, exe, *flags], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            pass_fds=(to_browser_r, from_browser_w), close_fds=True)
    os.close(to_browser_r)
    os.close(from_browser_w)
    pipe = _Pipe(to_browser_w, from_browser_r, proc)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        pipe.send("Page.navigate", {"url": path.as_uri()}, session=session)
        pipe.wait_event("Page.loadEventFired", timeout=timeout)
        metrics = pipe.send("Page.getLayoutMetrics", session=session)
        content = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
        content_height = int(content.get("height", height))
        shot_height = height
        if full_page:
            shot_height = max(height, content_height)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": shot_height, "deviceScaleFactor": 1, "mobile": False},
                      session=session)
        data = pipe.send("Page.captureScreenshot", {"format": "png"}, session=session, timeout=timeout)["data"]
        errors = _errors(pipe.events)
        try:
            pipe.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError):
            pass
        return Screenshot(base64.b64decode(data), width, shot_height, content_height, errors)
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_browser_w)
        os.close(from_browser_r)
        shutil.rmtree(profile, ignore_errors=True)


def _high(fd: int) -> int:
    """A close-on-exec copy of `fd` numbered 10 or above (the original is closed)."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
        elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append("log: " + str(p["entry"].get("text")))
    return out
