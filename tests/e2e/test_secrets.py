"""No secret in any output at debug level, token auth: the API token and the sign= of
every download link never appear in the daemon's log, nor in `status`, `gaps` or
`check-config`, also on the error paths (a 401, a TLS failure, a refused download
whose answer echoes its signature). A token or key file open to group or others is
warned about by check-config and at start, without its content. The signed code and
private key of signed-code auth are checked the same way by
test_auth.SignedCodeAuthTest (assert_no_secrets)."""

import os
import shutil
import tempfile
import unittest

from harness import TOKEN, E2ETestCase
from test_tls import SIGN, Certificates, HttpsServer, TlsProxy, fetch, point_daemon_at


class SecretsTest(E2ETestCase):
    def test_token_and_link_signatures_appear_in_no_output(self):
        # Links expire mid-run once, so fresh links (new signatures) are logged about too.
        server, daemon = self.start({"slot_defaults": {"expired_links_polls": 1}})
        with open(daemon.config, encoding="utf-8") as f:
            self.assertIn("log: {level: debug}", f.read())
        slots = self.expected()

        run = self.assert_run_once()
        self.assert_archived("shop-hourly", slots)

        signs = server.request("/_control/signs")["signs"]
        # Two answers with links per slot: the expired ones and the fresh ones.
        self.assertGreaterEqual(len(signs), 2 * len(slots))
        outputs = {"run --once": run.stdout + run.stderr}
        for command in (["status"], ["status", "--json"], ["gaps"], ["gaps", "--json"],
                        ["check-config"]):
            result = daemon.cli(*command)
            self.assertIn(result.returncode, (0, 2), f"{command}: {result.stderr}")
            outputs[" ".join(command)] = result.stdout + result.stderr
        self.assertIn("api call", outputs["run --once"], "the debug log is not on")
        for name, text in outputs.items():
            self.assertNotIn(TOKEN, text, f"the API token appears in the output of {name}")
            for sign in signs:
                self.assertNotIn(sign, text, f"a link signature appears in the output of {name}")
            # Links are logged without their query at all.
            self.assertNotIn("sign=", text, f"a link query appears in the output of {name}")

    def assert_clean(self, text, *secrets):
        for secret in (TOKEN,) + secrets:
            self.assertNotIn(secret, text)

    def test_a_401_does_not_show_the_token(self):
        # The server expects another token: every API call is answered 401.
        server, daemon = self.start({"token": "the-token-the-server-wants"})
        run = daemon.run_once()
        text = run.stdout + run.stderr
        self.assertIn("401", text, "the 401 path was not taken")
        self.assert_clean(text, "the-token-the-server-wants")
        for command in (["status"], ["gaps"], ["check-config"]):
            result = daemon.cli(*command)
            self.assert_clean(result.stdout + result.stderr)

    def test_a_tls_failure_does_not_show_the_token(self):
        server, daemon = self.start()
        certs = Certificates()
        self.addCleanup(certs.remove)
        proxy = TlsProxy(certs.context("self"), int(server.base.rsplit(":", 1)[1]))
        self.addCleanup(proxy.stop)
        point_daemon_at(daemon, f"https://127.0.0.1:{proxy.port}")
        run = daemon.run_once()
        text = run.stdout + run.stderr
        self.assertIn("self-signed certificate", text, "the TLS failure path was not taken")
        self.assert_clean(text)

    def test_a_refused_download_echoing_its_signature_does_not_show_it(self):
        # Object stores quote the request, signature included, in their error answers.
        def refuse(handler):
            body = f"<Error><Code>AccessDenied</Code><Request>{handler.path}</Request></Error>".encode()
            handler.send_response(403)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        store = HttpsServer({"/part-0.csv.gz": refuse})
        self.addCleanup(store.stop)
        out = os.path.join(self.base, "out")
        result = fetch(store.url(f"/part-0.csv.gz?{SIGN}"), "--dir", out)
        text = result.stdout + result.stderr
        self.assertEqual(result.returncode, 1, text)
        self.assertIn("403", text)
        self.assertNotIn(SIGN.split("=", 1)[1], text)
        self.assertNotIn("sign=", text)

    def test_a_secret_file_open_to_others_is_warned_about_without_its_content(self):
        folder = tempfile.mkdtemp(prefix="gio-e2e-secret-file-")
        self.addCleanup(shutil.rmtree, folder, True)
        token_file = os.path.join(folder, "shop.token")
        with open(token_file, "w", encoding="utf-8") as f:
            f.write(TOKEN + "\n")
        server, daemon = self.start()
        with open(daemon.config, encoding="utf-8") as f:
            text = f.read()
        with open(daemon.config, "w", encoding="utf-8") as f:
            f.write(text.replace("token_env: GIO_TEST_TOKEN", f"token_file: {token_file}"))

        os.chmod(token_file, 0o600)
        quiet = daemon.cli("check-config")
        self.assertEqual(quiet.returncode, 0, quiet.stderr)
        self.assertNotIn("warning", quiet.stdout + quiet.stderr)

        os.chmod(token_file, 0o644)
        for result in (daemon.cli("check-config"), daemon.run_once()):
            output = result.stdout + result.stderr
            self.assertEqual(result.returncode, 0, output)
            self.assertIn(f"warning: the token file {token_file} is open to group or others "
                          f"(mode 0644); make it readable by its owner only: chmod 600 {token_file}",
                          output)
            self.assert_clean(output)


if __name__ == "__main__":
    unittest.main()
