"""TLS failures are refused and explained, end to end: `gio-exporter fetch` and the
daemon against local HTTPS servers whose certificates this test makes with the openssl
command (a CA; a server certificate for localhost and 127.0.0.1; one for another host;
an expired one; a self-signed one), and a server that offers only TLS 1.0/1.1.

Each refusal names the host and the reason and never the link's signature; with
http.ca_file naming the right CA the same servers work.

Also a small toolbox for the other end-to-end tests of hostile peers: Certificates,
HttpsServer (a scripted answer per path), TlsProxy (TLS in front of the fake server)."""

import gzip
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest
import warnings

from harness import ARCHIVE_IDENTITY, TOKEN, E2ETestCase, binary, wait_for

SIGN = "sign=SECRET-SIGNATURE-0123456789abcdef"


class Certificates:
    """A CA and server certificates, made in a temp folder with the openssl command."""

    NAMES = {"good": "DNS:localhost,IP:127.0.0.1", "other": "DNS:other.example",
             "expired": "DNS:localhost,IP:127.0.0.1"}

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="gio-e2e-certs-")
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self._openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                      "-subj", "/CN=gio-e2e-ca")
        for name, alt in self.NAMES.items():
            with open(self.path(f"{name}.ext"), "w", encoding="utf-8") as f:
                f.write(f"subjectAltName={alt}\n")
            self._openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                          "-subj", f"/CN={name}")
            # -days -1: valid from now until yesterday, i.e. expired.
            self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                          "-CAcreateserial", "-days", "-1" if name == "expired" else "2",
                          "-extfile", f"{name}.ext", "-out", f"{name}.pem")
        self._openssl("req", "-x509", *key, "-keyout", "self.key", "-out", "self.pem", "-days", "2",
                      "-subj", "/CN=self", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")

    def _openssl(self, *args):
        result = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)}: {result.stderr}")

    def path(self, name):
        return os.path.join(self.dir, name)

    def context(self, name, old_versions_only=False):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.path(f"{name}.pem"), self.path(f"{name}.key"))
        if old_versions_only:
            # OpenSSL 3 refuses TLS 1.0/1.1 at its default security level, on both sides.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
                context.maximum_version = ssl.TLSVersion.TLSv1_1
        return context

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def gzip_body(text="a,b\n1,2\n"):
    return gzip.compress(text.encode(), mtime=0)


class HttpsServer:
    """A threaded HTTP server (TLS when given a context); `answers` maps a path (without
    query) to a callable(handler) that writes the whole answer, or to bytes for a 200."""

    def __init__(self, answers, context=None):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.requests.append(self.path)
                answer = answers.get(self.path.split("?")[0])
                if answer is None:
                    self.send_error(404)
                elif callable(answer):
                    answer(self)
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)

            def log_message(self, *args):
                pass

            def handle(self):
                try:
                    super().handle()
                except (OSError, ssl.SSLError):
                    pass  # the client hung up on a hostile answer: expected here

        self.requests = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        self.scheme = "https" if context is not None else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path, host="127.0.0.1"):
        return f"{self.scheme}://{host}:{self.port}{path}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class TlsProxy:
    """TLS in front of a plain TCP server: each accepted connection is relayed to it."""

    def __init__(self, context, target_port):
        self.context = context
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        try:
            secure = self.context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):
            client.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port))

        def pump(source, sink):
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except (OSError, ssl.SSLError):
                pass
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        back = threading.Thread(target=pump, args=(upstream, secure), daemon=True)
        back.start()
        pump(secure, upstream)
        back.join(10)
        secure.close()
        upstream.close()

    def stop(self):
        self.stopped = True
        self.listener.close()


def fetch(*args, config=None, timeout=60):
    command = [binary()] + (["-c", config] if config else []) + ["fetch", *args]
    env = dict(os.environ, GIO_TEST_TOKEN=TOKEN)  # the configs of write_config name it
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def write_config(path, api_base="http://127.0.0.1:9", ca_file=None, timeout="5s", extra=""):
    with open(path, "w", encoding="utf-8") as f:
        f.write("state_db: state.db\narchive_dir: archive\n"
                f'http: {{api_base: "{api_base}", timeout: {timeout}'
                + (f', ca_file: "{ca_file}"' if ca_file else "") + "}\n"
                'metrics: {listen: ""}\nlog: {level: debug}\n' + extra
                + "projects:\n  - {name: shop, ai: 2a1b4018cd954ec2bcc69da5138bdb96, "
                "project_uid: nxog09md, auth: {token_env: GIO_TEST_TOKEN}}\n"
                "jobs:\n  - {name: shop-hourly, project: shop}\n")
    return path


class FetchTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = Certificates()
        cls.body = gzip_body()

    @classmethod
    def tearDownClass(cls):
        cls.certs.remove()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gio-e2e-tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.trusting = write_config(os.path.join(self.dir, "ca.yaml"), ca_file=self.certs.path("ca.pem"))

    def serve(self, name, old_versions_only=False):
        server = HttpsServer({"/part-0.csv.gz": self.body},
                             self.certs.context(name, old_versions_only))
        self.addCleanup(server.stop)
        return server

    def assert_refused(self, result, out, host, reason):
        text = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, text)
        self.assertRegex(result.stdout, r"^FAILED https://[^ ]+/part-0\.csv\.gz: network: ", text)
        self.assertIn(f"TLS handshake with {host}", text)
        self.assertIn(reason, text)
        self.assertNotIn("SECRET", text)
        self.assertEqual(os.listdir(out), [], "a refused download left a file behind")

    def test_the_right_ca_file_makes_it_work(self):
        server = self.serve("good")
        out = os.path.join(self.dir, "out")
        for host in ("127.0.0.1", "localhost"):
            result = fetch(server.url(f"/part-0.csv.gz?{SIGN}", host), "--dir", out,
                           config=self.trusting)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertRegex(result.stdout, r"^OK part-0\.csv\.gz ")
            with open(os.path.join(out, "part-0.csv.gz"), "rb") as f:
                self.assertEqual(f.read(), self.body)

    def test_a_self_signed_certificate_without_ca_file_is_refused(self):
        server = self.serve("self")
        out = os.path.join(self.dir, "out")
        self.assert_refused(fetch(server.url(f"/part-0.csv.gz?{SIGN}"), "--dir", out),
                            out, "127.0.0.1", "self-signed certificate")
        # A CA the operator names that did not sign it changes nothing.
        self.assert_refused(fetch(server.url(f"/part-0.csv.gz?{SIGN}"), "--dir", out,
                                  config=self.trusting), out, "127.0.0.1", "self-signed certificate")

    def test_an_unknown_ca_is_refused(self):
        server = self.serve("good")
        out = os.path.join(self.dir, "out")
        self.assert_refused(fetch(server.url(f"/part-0.csv.gz?{SIGN}", "localhost"), "--dir", out),
                            out, "localhost", "unable to get local issuer certificate")

    def test_a_host_name_mismatch_is_refused(self):
        server = self.serve("other")
        out = os.path.join(self.dir, "out")
        self.assert_refused(fetch(server.url(f"/part-0.csv.gz?{SIGN}", "localhost"), "--dir", out,
                                  config=self.trusting), out, "localhost", "hostname mismatch")
        self.assert_refused(fetch(server.url(f"/part-0.csv.gz?{SIGN}"), "--dir", out,
                                  config=self.trusting), out, "127.0.0.1", "IP address mismatch")

    def test_an_expired_certificate_is_refused(self):
        server = self.serve("expired")
        out = os.path.join(self.dir, "out")
        self.assert_refused(fetch(server.url(f"/part-0.csv.gz?{SIGN}"), "--dir", out,
                                  config=self.trusting), out, "127.0.0.1", "certificate has expired")

    def test_a_server_without_tls_1_2_is_refused(self):
        server = self.serve("good", old_versions_only=True)
        # The server does work for a client that still accepts TLS 1.1.
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        client.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client.minimum_version = ssl.TLSVersion.TLSv1
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with client.wrap_socket(raw) as secure:
                self.assertEqual(secure.version(), "TLSv1.1")
        out = os.path.join(self.dir, "out")
        self.assert_refused(fetch(server.url(f"/part-0.csv.gz?{SIGN}"), "--dir", out,
                                  config=self.trusting), out, "127.0.0.1", "no TLS 1.2 or newer")


def point_daemon_at(daemon, api_base, ca_file=None):
    """Rewrites the harness's config so that the daemon calls `api_base` (its jobs stay)."""
    with open(daemon.config, encoding="utf-8") as f:
        lines = f.read().splitlines()
    http = f'http: {{api_base: "{api_base}", timeout: 5s' + (f', ca_file: "{ca_file}"' if ca_file else "") + "}"
    lines = [http if line.startswith("http:") else line for line in lines]
    with open(daemon.config, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


class DaemonTlsTest(E2ETestCase):
    """The daemon's API calls over TLS: a proxy with a certificate of the test's CA sits
    in front of the fake server."""

    def setUp(self):
        super().setUp()
        self.certs = Certificates()
        self.addCleanup(self.certs.remove)

    def proxied(self, certificate):
        server, daemon = self.start()
        proxy = TlsProxy(self.certs.context(certificate), int(server.base.rsplit(":", 1)[1]))
        self.addCleanup(proxy.stop)
        return server, daemon, f"https://localhost:{proxy.port}"

    def test_the_daemon_archives_through_tls_with_ca_file(self):
        server, daemon, api_base = self.proxied("good")
        point_daemon_at(daemon, api_base, ca_file=self.certs.path("ca.pem"))
        with open(daemon.config, encoding="utf-8") as f:
            self.assertIn(f"api_base: \"{api_base}\", timeout: 5s, ca_file:", f.read())
        run = self.assert_run_once()
        self.assert_archived("shop-hourly", self.expected())
        self.assertNotIn(TOKEN, run.stdout + run.stderr)

    def test_the_daemon_refuses_an_untrusted_api_and_says_why(self):
        server, daemon, api_base = self.proxied("good")
        point_daemon_at(daemon, api_base)  # no ca_file: the CA is unknown
        run = daemon.run_once()
        text = run.stdout + run.stderr
        self.assertIn("TLS handshake with localhost", text)
        self.assertIn("unable to get local issuer certificate", text)
        self.assertNotIn(TOKEN, text)
        self.assertEqual(server.stats()["api_calls"], {}, "a request got through")
        archived = [f for _, _, files in os.walk(daemon.archive) for f in files if f != ARCHIVE_IDENTITY]
        self.assertEqual(archived, [])


if __name__ == "__main__":
    unittest.main()
