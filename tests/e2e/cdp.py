"""A small Chrome DevTools Protocol client, standard library only.

CI has no network but Debian's archive, so no playwright or selenium: this starts
Debian's chromium headless and speaks the protocol over a websocket framed by hand
(RFC 6455: the handshake, masked client frames, fragmented and 64-bit-length server
frames). Enough for a test: evaluate script (awaiting promises), click, screenshot.

    with Browser() as browser:
        page = browser.new_page("http://127.0.0.1:8080/")
        page.wait_for("document.readyState === 'complete'")
        page.click("button.cell")
        page.screenshot("/tmp/page.png")
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request

import harness

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


class CdpError(Exception):
    """The browser failed, answered an error, or did not answer in time."""


def find_chromium():
    """The path of a chromium binary, or None. GIO_CHROMIUM overrides the search."""
    given = os.environ.get("GIO_CHROMIUM")
    if given:
        return given if os.access(given, os.X_OK) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _deadline_wait(predicate, timeout, what, interval=0.05):
    return harness.wait_for(predicate, timeout, what, interval=interval, error=CdpError)


class WebSocket:
    """A client websocket over a plain TCP socket (ws:// on loopback only)."""

    def __init__(self, url, timeout=30):
        if not url.startswith("ws://"):
            raise CdpError(f"not a ws:// URL: {url}")
        rest = url[len("ws://"):]
        host_port, _, path = rest.partition("/")
        host, _, port = host_port.rpartition(":")
        self.timeout = timeout
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buffer = b""
        self._handshake(host_port, "/" + path)

    def _handshake(self, host_port, path):
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise CdpError(f"websocket handshake refused: {head.decode('latin-1')}")
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if b"sec-websocket-accept: " + want.lower() not in head.lower():
            raise CdpError("websocket handshake: wrong Sec-WebSocket-Accept")

    def _fill(self):
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            raise CdpError(f"the browser sent nothing for {self.timeout}s") from None
        if not chunk:
            raise CdpError("the browser closed the websocket")
        self.buffer += chunk

    def _take(self, count):
        while len(self.buffer) < count:
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def send(self, text, opcode=0x1):
        """One masked frame (a client must mask every frame)."""
        payload = text.encode() if isinstance(text, str) else text
        header = bytes([0x80 | opcode])
        length = len(payload)
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def receive(self, timeout):
        """The next whole text message, fragments joined; answers pings, fails on close."""
        self.sock.settimeout(timeout)
        self.timeout = timeout
        message, message_opcode = b"", None
        while True:
            first, second = self._take(2)
            fin, opcode = first & 0x80, first & 0x0F
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._take(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._take(8))[0]
            mask = self._take(4) if second & 0x80 else None
            payload = self._take(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:  # ping: a control frame may come between fragments
                self.send(payload, opcode=0xA)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                raise CdpError("the browser closed the websocket")
            if opcode != 0x0:
                message_opcode = opcode
            message += payload
            if fin:
                return message.decode() if message_opcode == 0x1 else message

    def close(self):
        try:
            self.send(b"", opcode=0x8)
        except OSError:
            pass
        self.sock.close()


class Page:
    """One target (tab), over its own websocket."""

    def __init__(self, websocket_url, timeout=30):
        self.ws = WebSocket(websocket_url, timeout)
        self.timeout = timeout
        self.next_id = 0
        self.events = []

    def call(self, method, timeout=None, **params):
        """Sends a command and returns its result; events that come first are kept."""
        timeout = timeout or self.timeout
        self.next_id += 1
        call_id = self.next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"{method}: no answer within {timeout}s")
            message = json.loads(self.ws.receive(left))
            if message.get("id") == call_id:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression, timeout=None):
        """The value of a JavaScript expression (a promise is awaited); a thrown
        exception fails with its description."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                           returnByValue=True, userGesture=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"script threw: {text}\n  in: {expression[:200]}")
        return result["result"].get("value")

    def navigate(self, url, timeout=None):
        self.call("Page.enable")
        answer = self.call("Page.navigate", timeout=timeout, url=url)
        if answer.get("errorText"):
            raise CdpError(f"navigating to {url}: {answer['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout or self.timeout, f"{url} to load")

    def wait_for(self, expression, timeout, what=None):
        """Polls a JavaScript expression until it is truthy; returns its value."""
        # The timeout's message carries the expression's last value.
        return _deadline_wait(lambda: self.evaluate(expression), timeout, what or expression, interval=0.1)

    def click(self, selector):
        """A real mouse click (press and release) at the middle of the element, so the
        page's own listeners see what a user's click gives them."""
        box = self.evaluate(
            "(() => { const e = document.querySelector(%s); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height]; })()"
            % json.dumps(selector))
        if box is None:
            raise CdpError(f"click: nothing matches {selector}")
        x, y, width, height = box
        if width <= 0 or height <= 0:
            raise CdpError(f"click: {selector} is not visible ({width}x{height})")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def screenshot(self, path, width=None, height=None):
        """A PNG of the viewport (or of width x height from the top left) at `path`."""
        params = {"format": "png"}
        if width and height:
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        data = base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def close(self):
        self.ws.close()


class Browser:
    """Headless chromium in its own process group and a temporary profile; close()
    (or leaving the `with`) kills the whole group and removes the profile."""

    def __init__(self, width=1280, height=900, timeout=30, binary=None):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise CdpError("no chromium installed (apt-get install chromium)")
        self.timeout = timeout
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="gio-chromium-")
        self.log_path = os.path.join(self.profile, "chromium.log")
        self.pages = []
        args = [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--mute-audio", "--remote-debugging-port=0",
                "--remote-allow-origins=*", f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}", "about:blank"]
        # Not the profile: chromium writes its DevToolsActivePort there, and it must be
        # readable; its log goes next to it.
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        try:
            self.port = _deadline_wait(self._read_port, timeout, "chromium's DevToolsActivePort")
        except CdpError as error:
            self.close()
            raise CdpError(f"{error}\n--- chromium log ---\n{self.log_tail()}") from None

    def _read_port(self):
        if self.process.poll() is not None:
            raise CdpError(f"chromium exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            with open(os.path.join(self.profile, "DevToolsActivePort")) as f:
                line = f.readline().strip()
            return int(line) if line else None
        except (FileNotFoundError, ValueError):
            return None

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-lines:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def _http(self, path, method="GET"):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=self.timeout) as answer:
            return json.load(answer)

    def new_page(self, url=None):
        target = self._http("/json/new?about:blank", method="PUT")
        page = Page(target["webSocketDebuggerUrl"], self.timeout)
        self.pages.append(page)
        # --window-size counts the window's frame: the viewport, what a screenshot shows,
        # is set exactly here.
        page.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        if url:
            page.navigate(url)
        return page

    def close(self):
        for page in self.pages:
            try:
                page.close()
            except OSError:
                pass
        self.pages = []
        # The renderer, GPU and zygote processes are children, and may outlive a crashed
        # browser process: the whole group goes at once.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        try:
            _deadline_wait(self._group_gone, 10, "chromium's processes to exit after SIGKILL")
        except CdpError:
            pass  # reparented zombies that init has not reaped yet: nothing runs any more
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _group_gone(self):
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
