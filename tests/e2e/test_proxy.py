"""Forward proxies, end to end, through a real one: Debian's tinyproxy, run by each test in
the foreground on a loopback port with its own config file and log (scripts/setup.sh
installs it; the tests are skipped without it).

The fake server is on 127.0.0.1, which the daemon could also reach directly, so the proof
that a request went through the proxy is the proxy's own log (each request it took, with
its method and URL), matched against what the fake server counted; and with the proxy
stopped nothing gets through. HTTPS goes through CONNECT to a TLS front (test_tls's
TlsProxy, with a certificate of the test's CA) whose certificate names only `localhost`:
a check against the proxy's address (127.0.0.1) would fail, so the archive proves the
check was against the origin. Proxy credentials never appear in the daemon's logs."""

import collections
import os
import re
import shutil
import socket
import subprocess
import unittest
import urllib.parse

from harness import ARCHIVE_IDENTITY, TOKEN, E2ETestCase, tail, wait_for
from test_tls import Certificates, TlsProxy, fetch, write_config

USER = "gio"
PASSWORD = "proxy-pa55-Zq7"  # found nowhere in the daemon's output, or the test fails


def free_port():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def tinyproxy_binary():
    for path in (shutil.which("tinyproxy"), "/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"):
        if path and os.access(path, os.X_OK):
            return path
    raise unittest.SkipTest("tinyproxy is not installed (scripts/setup.sh installs it)")


class Tinyproxy:
    """tinyproxy in the foreground (-d) with its own config: loopback only, CONNECT allowed
    to `connect_ports` only, Basic credentials required when `credentials` is given."""

    def __init__(self, folder, connect_ports=(), credentials=None):
        self.folder = folder
        self.binary = tinyproxy_binary()
        self.log_path = os.path.join(folder, "tinyproxy.log")
        self.process = None
        self.port = None
        self.connect_ports = connect_ports
        self.credentials = credentials
        for _ in range(5):  # a port chosen free may be taken before tinyproxy binds it
            if self._start():
                return
        raise AssertionError(f"tinyproxy did not start:\n{tail(self.output_path, 20)}")

    def _start(self):
        self.port = free_port()
        conf = os.path.join(self.folder, "tinyproxy.conf")
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 30", f'LogFile "{self.log_path}"',
                 "LogLevel Info", "MaxClients 50", "Allow 127.0.0.1"]
        # Without a ConnectPort line tinyproxy allows CONNECT to any port: one line each.
        lines += [f"ConnectPort {port}" for port in self.connect_ports or (443,)]
        if self.credentials:
            lines.append(f"BasicAuth {self.credentials[0]} {self.credentials[1]}")
        with open(conf, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self.output_path = os.path.join(self.folder, "tinyproxy.out")
        with open(self.output_path, "ab") as output:
            self.process = subprocess.Popen([self.binary, "-d", "-c", conf], stdout=output,
                                            stderr=subprocess.STDOUT)

        def listening():
            if self.process.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return None
        started = wait_for(listening, 15, "tinyproxy listening") if self.process.poll() is None else False
        return bool(started)

    def url(self, credentials=None):
        userinfo = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
        return f"http://{userinfo}127.0.0.1:{self.port}"

    def requests(self):
        """(method, URL) of each request the proxy took, in order."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        return re.findall(r"Request \(file descriptor \d+\): (\S+) (\S+) HTTP/", text)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class LocalhostCertificates(Certificates):
    """Adds "localonly": a certificate for the name localhost and no address."""

    NAMES = {**Certificates.NAMES, "localonly": "DNS:localhost"}


class ProxyTest(E2ETestCase):
    def setUp(self):
        super().setUp()
        tinyproxy_binary()  # skip early without it

    def tinyproxy(self, connect_ports=(), credentials=(USER, PASSWORD)):
        proxy = Tinyproxy(self.aux_dir, connect_ports, credentials)
        self.addCleanup(proxy.stop)
        return proxy

    def set_http(self, api_base, **keys):
        """The config's http line: api_base plus `keys` (proxy, no_proxy, ca_file)."""
        extra = "".join(f', {key}: "{value}"' for key, value in keys.items())
        with open(self.daemon.config, encoding="utf-8") as f:
            lines = f.read().splitlines()
        lines = [f'http: {{api_base: "{api_base}", timeout: 5s{extra}}}' if line.startswith("http:")
                 else line for line in lines]
        with open(self.daemon.config, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def dead_proxy(self):
        return f"http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}"

    def assert_no_secret(self, text):
        self.assertNotIn(PASSWORD, text)
        self.assertNotIn(TOKEN, text)
        self.assertNotIn("sign=", text)

    def api_calls(self):
        return sum(self.server.stats()["api_calls"].values())

    def assert_everything_went_through(self, proxy, api_host):
        """Every API call and every download the fake server saw is in the proxy's log."""
        requests = proxy.requests()
        api = [url for method, url in requests if "/v2/" in url]
        links = [url for method, url in requests if "sign=" in url]
        stats = self.server.stats()
        self.assertGreater(len(api), 0, requests)
        self.assertEqual(len(api), sum(stats["api_calls"].values()), (requests, stats))
        self.assertEqual(collections.Counter(urllib.parse.urlsplit(url).path for url in links),
                         collections.Counter(stats["downloads_started"]), (requests, stats))
        self.assertGreater(len(links), 0, requests)
        for method, url in requests:
            if "/v2/" in url:
                self.assertTrue(url.startswith(api_host), url)
            if "sign=" in url:  # the links are plain http: absolute-form, not a tunnel
                self.assertEqual(method, "GET")
                self.assertTrue(url.startswith(self.server.base + "/"), url)

    def test_the_api_and_the_links_go_through_the_proxy_of_the_config(self):
        server, daemon = self.start()
        proxy = self.tinyproxy()
        self.set_http(server.base, proxy=proxy.url((USER, PASSWORD)))
        # The config wins over the environment, whose proxy is down.
        daemon.extra_env = {"http_proxy": self.dead_proxy(), "https_proxy": self.dead_proxy()}
        run = self.assert_run_once()
        self.assert_archived("shop-hourly", self.expected())
        self.assert_everything_went_through(proxy, server.base + "/v2/")
        text = run.stdout + run.stderr
        self.assertIn(f"proxy: https:// URLs through http://127.0.0.1:{proxy.port} (http.proxy), "
                      f"http:// URLs through http://127.0.0.1:{proxy.port} (http.proxy)", text)
        self.assert_no_secret(daemon.log_text())

    def test_with_the_proxy_stopped_nothing_gets_through(self):
        server, daemon = self.start()
        proxy = self.tinyproxy()
        proxy.stop()
        self.set_http(server.base, proxy=proxy.url((USER, PASSWORD)))
        run = daemon.run_once()
        text = run.stdout + run.stderr
        self.assertIn(f"connecting to the proxy http://127.0.0.1:{proxy.port}: Connection refused",
                      text)
        self.assertIn(f"{server.base}/v2/", text)  # the origin it was for
        self.assert_no_secret(daemon.log_text())
        self.assertEqual(server.stats()["api_calls"], {}, "a request went around the proxy")
        archived = [f for _, _, files in os.walk(daemon.archive) for f in files if f != ARCHIVE_IDENTITY]
        self.assertEqual(archived, [])

    def test_https_goes_through_connect_with_the_origins_certificate(self):
        certs = LocalhostCertificates()
        self.addCleanup(certs.remove)
        server, daemon = self.start()
        front = TlsProxy(certs.context("localonly"), int(server.base.rsplit(":", 1)[1]))
        self.addCleanup(front.stop)
        proxy = self.tinyproxy(connect_ports=(front.port,))
        api_base = f"https://localhost:{front.port}"
        self.set_http(api_base, proxy=proxy.url((USER, PASSWORD)), ca_file=certs.path("ca.pem"))
        run = self.assert_run_once()
        self.assert_archived("shop-hourly", self.expected())
        requests = proxy.requests()
        tunnels = [url for method, url in requests if method == "CONNECT"]
        self.assertGreater(len(tunnels), 0, requests)
        self.assertEqual(set(tunnels), {f"localhost:{front.port}"})
        # Inside the tunnels the proxy sees nothing: every API call was in one.
        self.assertEqual([url for _, url in requests if "/v2/" in url], [])
        self.assertGreater(self.api_calls(), 0)
        # The links (plain http) went through the same proxy.
        links = [url for method, url in requests if method == "GET" and "sign=" in url]
        self.assertEqual(collections.Counter(urllib.parse.urlsplit(url).path for url in links),
                         collections.Counter(self.server.stats()["downloads_started"]))
        self.assert_no_secret(run.stdout + run.stderr)

    def test_a_certificate_for_another_host_is_refused_through_the_tunnel(self):
        certs = Certificates()
        self.addCleanup(certs.remove)
        server, daemon = self.start()
        front = TlsProxy(certs.context("other"), int(server.base.rsplit(":", 1)[1]))
        self.addCleanup(front.stop)
        proxy = self.tinyproxy(connect_ports=(front.port,))
        self.set_http(f"https://localhost:{front.port}", proxy=proxy.url((USER, PASSWORD)),
                      ca_file=certs.path("ca.pem"))
        run = daemon.run_once()
        text = run.stdout + run.stderr
        self.assertIn("TLS handshake with localhost", text)
        self.assertIn("hostname mismatch", text)
        self.assertIn(("CONNECT", f"localhost:{front.port}"), proxy.requests())
        self.assertEqual(server.stats()["api_calls"], {})
        self.assert_no_secret(daemon.log_text())

    def test_the_environment_variables_and_no_proxy(self):
        server, daemon = self.start()
        proxy = self.tinyproxy(credentials=None)
        # Uppercase works as well as lowercase; no_proxy names the fake server's host.
        daemon.extra_env = {"HTTP_PROXY": proxy.url(), "https_proxy": proxy.url(),
                            "no_proxy": "localhost, 127.0.0.1"}
        run = self.assert_run_once()
        self.assert_archived("shop-hourly", self.expected())
        self.assertEqual(proxy.requests(), [], "no_proxy did not bypass the proxy")
        self.assertIn("directly to no_proxy=localhost, 127.0.0.1", run.stdout + run.stderr)

        # With a no_proxy that does not name it, the same variables send it all through the
        # proxy: the same slots, archived afresh (a second database and archive).
        daemon.extra_env["no_proxy"] = "other.example"
        with open(daemon.config, encoding="utf-8") as f:
            config = f.read()
        with open(daemon.config, "w", encoding="utf-8") as f:
            f.write(config.replace("state_db: state.db", "state_db: second.db")
                    .replace("archive_dir: archive", "archive_dir: second"))
        daemon.archive = os.path.join(daemon.run_dir, "second")
        run = self.assert_run_once()
        self.assert_archived("shop-hourly", self.expected())
        self.assertIn(f"http:// URLs through http://127.0.0.1:{proxy.port} (HTTP_PROXY)",
                      run.stdout + run.stderr)
        api = [url for _, url in proxy.requests() if "/v2/" in url]
        self.assertGreater(len(api), 0, proxy.requests())

    def test_an_empty_proxy_in_the_config_ignores_the_environment(self):
        server, daemon = self.start()
        self.set_http(server.base, proxy="")
        daemon.extra_env = {"http_proxy": self.dead_proxy(), "https_proxy": self.dead_proxy()}
        run = self.assert_run_once()
        self.assert_archived("shop-hourly", self.expected())
        self.assertNotIn("proxy:", run.stdout + run.stderr)

    def test_refused_credentials_name_the_proxy_and_the_origin_and_nothing_secret(self):
        certs = Certificates()
        self.addCleanup(certs.remove)
        server, daemon = self.start()
        front = TlsProxy(certs.context("good"), int(server.base.rsplit(":", 1)[1]))
        self.addCleanup(front.stop)
        proxy = self.tinyproxy(connect_ports=(front.port,))
        wrong = proxy.url((USER, PASSWORD + "-wrong"))
        self.set_http(f"https://localhost:{front.port}", proxy=wrong, ca_file=certs.path("ca.pem"))
        run = daemon.run_once()
        text = run.stdout + run.stderr
        # tinyproxy answers wrong credentials with 401 (no credentials get 407).
        self.assertRegex(text, rf"the proxy http://127\.0\.0\.1:{proxy.port} refused CONNECT to "
                               rf"localhost:{front.port}: 40[17] ")
        self.assertIn("did not accept the proxy's user and password", text)
        self.assert_no_secret(daemon.log_text())
        self.assertEqual(server.stats()["api_calls"], {})

        # `fetch` takes the same way: a plain http link, answered 407 by the proxy itself
        # when it is given no credentials.
        config = write_config(os.path.join(self.aux_dir, "fetch.yaml"))
        with open(config, encoding="utf-8") as f:
            text = f.read()
        with open(config, "w", encoding="utf-8") as f:
            f.write(text.replace("timeout: 5s", f'timeout: 5s, proxy: "{proxy.url()}"'))
        out = os.path.join(self.aux_dir, "out")
        link = f"{server.base}/part-0.csv.gz?sign=SECRET-SIGNATURE"
        result = fetch(link, "--dir", out, config=config)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, output)
        self.assertIn(f"the proxy http://127.0.0.1:{proxy.port} refused the request: 407", output)
        self.assertIn("it asks for credentials", output)
        self.assertNotIn(PASSWORD, output)
        self.assertNotIn("SECRET-SIGNATURE", output)
        self.assertIn(("GET", link), proxy.requests())


if __name__ == "__main__":
    unittest.main()
