"""Hostile download peers, end to end through `gio-exporter fetch` (the daemon's own
download-and-verify path): redirect loops and redirects to other schemes, header floods
and headers that never end, a peer dripping one byte per second, a body longer than its
Content-Length, a chunked body without its last chunk. Each fails cleanly: one FAILED
line with a reason, exit status 1, no file published, no staging file left, and no
link signature in the output.

The API side (an answer over the 64 MiB cap, and the same peers answering API calls)
is covered by the unit tests in tests/unit/http_test.cpp (HostilePeer.*)."""

import gzip
import os
import shutil
import socket
import tempfile
import threading
import time
import unittest

from test_tls import SIGN, fetch, write_config

BODY = gzip.compress(b"a,b\n1,2\n" * 100, mtime=0)


def head(status="200 OK", *headers):
    return (f"HTTP/1.1 {status}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


class RawServer:
    """Answers each request with whatever `script(path, connection)` sends, byte for byte."""

    def __init__(self, script):
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection):
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                data = connection.recv(4096)
                if not data:
                    return
                request += data
            path = request.split(b" ")[1].decode().split("?")[0]
            try:
                self.script(path, connection, self)
            except OSError:
                pass  # the client gave up on us: that is the point

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}?{SIGN}"

    def stop(self):
        self.stopping = True
        self.listener.close()


def hostile(path, connection, server):
    send = connection.sendall
    if path == "/loop.csv.gz":
        send(head("302 Found", "Location: /loop.csv.gz?sign=again", "Content-Length: 0"))
    elif path == "/file.csv.gz":
        send(head("302 Found", "Location: file:///etc/passwd", "Content-Length: 0"))
    elif path == "/flood.csv.gz":
        send(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Flood-%d: x\r\n" % i for i in range(20000))
             + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
    elif path == "/endless.csv.gz":
        send(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        while not server.stopping:
            send(b"a" * 65536)
    elif path == "/drip.csv.gz":
        send(head("200 OK", f"Content-Length: {len(BODY)}"))
        for byte in BODY:  # one byte per second: 600+ seconds if nothing cuts it
            send(bytes([byte]))
            time.sleep(1)
    elif path == "/long.csv.gz":
        send(head("200 OK", f"Content-Length: {len(BODY)}") + BODY + b"and then some more")
        time.sleep(1)
    elif path in ("/chunked-closed.csv.gz", "/chunked-open.csv.gz"):
        send(head("200 OK", "Transfer-Encoding: chunked") + b"%x\r\n" % len(BODY) + BODY + b"\r\n")
        if path == "/chunked-open.csv.gz":
            time.sleep(30)  # never the last chunk; the connection stays open and silent


class HostilePeersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = RawServer(hostile)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gio-e2e-hostile-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.out = os.path.join(self.dir, "out")
        # A short idle timeout, as a test can afford to wait for it.
        self.config = write_config(os.path.join(self.dir, "config.yaml"), timeout="2s")

    def assert_fails_cleanly(self, path, kind, reason, within=30):
        started = time.monotonic()
        result = fetch(self.server.url(path), "--dir", self.out, config=self.config)
        took = time.monotonic() - started
        text = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, text)
        self.assertRegex(result.stdout, rf"^FAILED http://127\.0\.0\.1:\d+{path}: {kind}: ")
        self.assertRegex(result.stdout, reason)
        self.assertNotIn("SECRET", text)
        self.assertNotIn("sign=", text)
        self.assertEqual(os.listdir(self.out), [], "a file was published or left in staging")
        self.assertLess(took, within, text)
        return result

    def test_the_server_works_for_an_honest_answer(self):
        # The same server, an honest path: proves the failures below are the peers' doing.
        def honest(path, connection, server):
            connection.sendall(head("200 OK", f"Content-Length: {len(BODY)}") + BODY)
        server = RawServer(honest)
        self.addCleanup(server.stop)
        result = fetch(server.url("/part.csv.gz"), "--dir", self.out, config=self.config)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(sorted(os.listdir(self.out)), ["part.csv.gz"])

    def test_a_redirect_loop_is_refused(self):
        self.assert_fails_cleanly("/loop.csv.gz", "server", r"more than 5 redirects")

    def test_a_redirect_to_a_file_url_is_refused(self):
        self.assert_fails_cleanly("/file.csv.gz", "server",
                                  r"redirected to a file URL; only http and https are followed")

    def test_a_header_flood_is_cut(self):
        self.assert_fails_cleanly("/flood.csv.gz", "server", r"header limit exceeded")

    def test_a_header_that_never_ends_is_cut(self):
        self.assert_fails_cleanly("/endless.csv.gz", "server", r"header limit exceeded")

    def test_a_peer_dripping_one_byte_per_second_is_cut_by_the_timeout(self):
        self.assert_fails_cleanly("/drip.csv.gz", "network", r"no data for 2 ?s after \d+ of \d+ bytes",
                                  within=20)

    def test_a_body_longer_than_its_content_length_fails(self):
        self.assert_fails_cleanly("/long.csv.gz", "truncated",
                                  rf"sent more than the {len(BODY)} bytes it announced")

    def test_a_chunked_body_without_its_end_fails(self):
        self.assert_fails_cleanly("/chunked-closed.csv.gz", "truncated", r"connection closed after")
        self.assert_fails_cleanly("/chunked-open.csv.gz", "network", r"no data for 2 ?s", within=20)


if __name__ == "__main__":
    unittest.main()
