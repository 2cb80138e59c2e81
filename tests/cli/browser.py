"""Debian's Chromium, headless, driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: the browser reads commands on fd 3 and writes replies and events on
fd 4, JSON messages ended by a NUL byte). Standard library only.

    with Chromium() as browser:
        visit = browser.visit("file:///.../index.html", screenshot="page.png")
    visit.errors   # console errors, uncaught exceptions, failed loads ("Failed to load resource")
    visit.images   # every <img> and <object>: src, loaded, natural and rendered width

The flags are the ones this machine needs (/work/.library/env/machines/cpp.md): no sandbox as
root, no GPU, no background networking (the network is closed), a new empty profile.
"""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe"]

# Every <img> and <object> of the page: whether it loaded and at what size it is shown. An
# <object> holding an SVG counts as loaded when its document has a root element.
IMAGES_JS = """JSON.stringify([
  ...[...document.images].map(i => ({tag: "img", src: i.getAttribute("src"),
     loaded: i.complete && i.naturalWidth > 0, natural_width: i.naturalWidth,
     width: i.getBoundingClientRect().width})),
  ...[...document.querySelectorAll("object")].map(o => ({tag: "object", src: o.data,
     loaded: !!(o.contentDocument && o.contentDocument.documentElement),
     natural_width: 0, width: o.getBoundingClientRect().width}))])"""


def available():
    """None when Chromium can run here, else why not."""
    if not os.path.exists(CHROMIUM):
        return "chromium is not installed (scripts/install-deps installs it)"
    return None


class Visit:
    def __init__(self):
        self.errors = []  # one line each
        self.images = []
        self.height = 0


class Chromium:
    def __init__(self, width=1600, height=1000, timeout=60):
        self.width, self.height, self.timeout = width, height, timeout
        self.next_id = 0
        self.buffer = b""

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="ropekit-chromium-")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # Above fd 10, so that placing them at 3 and 4 in the child cannot overwrite each other.
        high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)

        def child_fds():
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, close_fds=False,
            preexec_fn=child_fds)
        os.close(high_r)
        os.close(high_w)
        self.send_fd, self.receive_fd = to_browser_w, from_browser_r
        return self

    def __exit__(self, *exc):
        try:
            self.command("Browser.close")
        except Exception:  # noqa: BLE001 (closing anyway)
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.send_fd)
        os.close(self.receive_fd)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _message(self, deadline):
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.receive_fd, 1 << 16)
            if not chunk:
                self.log.seek(0)
                raise RuntimeError("chromium closed the pipe: "
                                   + self.log.read().decode(errors="replace")[-2000:])
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def command(self, method, params=None, session=None, events=None):
        """Sends one command and returns its result; events that arrive meanwhile go to
        `events` (a list) when given."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.send_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if events is not None and "method" in reply:
                events.append(reply)

    def wait_for(self, method, session, events):
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == method and e.get("sessionId") == session for e in events):
            events.append(self._message(deadline))

    def visit(self, url, screenshot=None):
        """Loads `url` in a new tab, waits for its load event (all images loaded or failed),
        and reports errors and images; saves a full-page PNG to `screenshot` if given."""
        events = []
        target = self.command("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.command("Target.attachToTarget", {"targetId": target, "flatten": True},
                               events=events)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.command(f"{domain}.enable", session=session, events=events)
        self.command("Emulation.setDeviceMetricsOverride",
                     {"width": self.width, "height": self.height, "deviceScaleFactor": 1,
                      "mobile": False}, session=session, events=events)
        self.command("Page.navigate", {"url": url}, session=session, events=events)
        self.wait_for("Page.loadEventFired", session, events)
        visit = Visit()
        evaluate = {"expression": IMAGES_JS, "returnByValue": True}
        visit.images = json.loads(self.command("Runtime.evaluate", evaluate, session=session,
                                               events=events)["result"]["value"])
        visit.height = self.command("Runtime.evaluate", {
            "expression": "document.documentElement.scrollHeight", "returnByValue": True},
            session=session, events=events)["result"]["value"]
        if screenshot:
            shot = self.command("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": self.width, "height": visit.height,
                         "scale": 1}}, session=session, events=events)
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        visit.errors = [line for e in events if e.get("sessionId") == session
                        for line in [error_line(e)] if line]
        self.command("Target.closeTarget", {"targetId": target})
        return visit


def error_line(event):
    """One line for an event that is an error on the page, else None."""
    method, params = event["method"], event.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return "console." + params["type"] + ": " + " ".join(
            str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        return "exception: " + details.get("exception", {}).get("description",
                                                                 details.get("text", ""))
    if method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        return f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip()
    return None
