"""Download links (and their redirects) that lead to internal addresses are refused,
before any connection: loopback, link-local (cloud metadata at 169.254.169.254), private,
in any spelling (a name, an IPv4-mapped IPv6 literal). The API base's own class stays
allowed (these tests, like the demo, run the fake server on loopback), and
http.allow_private_links allows them all.

The refusal of a loopback link is proved where it would otherwise succeed: the fake
server listens on every address, the daemon reaches its API at this machine's own
non-loopback address, and links to 127.0.0.1 (served by the same fake server) must not
be fetched."""

import json
import os
import subprocess
import sys
import time
import unittest

from harness import FAKE_SERVER, NOW, E2ETestCase, Daemon, FakeServer, hourly_job, wait_for

REFUSED = "2026-11-22T13"
ALSO_REFUSED = "2026-11-22T14"
REDIRECTED = "2026-11-22T15"
BY_NAME = "2026-11-22T16"


def outward_address():
    """A non-loopback IPv4 address of this machine, or None."""
    try:
        words = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    for word in words:
        if "." in word and not word.startswith("127."):
            return word
    return None


class EveryAddressFakeServer(FakeServer):
    """The fake server bound to 0.0.0.0, reached (API and control) at `host`."""

    def __init__(self, aux_dir, scenario, host):
        self.aux_dir = aux_dir
        self.port_file = os.path.join(aux_dir, "fake.port")
        scenario_file = os.path.join(aux_dir, "scenario.json")
        with open(scenario_file, "w", encoding="utf-8") as f:
            json.dump(scenario, f)
        self.log_path = os.path.join(aux_dir, "fake-growingio.log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, FAKE_SERVER, "--host", "0.0.0.0", "--port", "0", "--port-file", self.port_file,
             "--scenario", scenario_file, "--now", NOW,
             "--data-dir", os.path.join(aux_dir, "fake-data")],
            stdout=self.log, stderr=subprocess.STDOUT)
        port = wait_for(self._read_port, 15, "the fake server's port file")
        self.base = f"http://{host}:{port}"


class PrivateLinksTest(E2ETestCase):
    def last_errors(self):
        _, gaps = self.daemon.gaps()
        return {gap["slot"]: gap.get("last_error") or "" for gap in gaps["gaps"]}

    def test_links_to_other_internal_classes_are_refused_before_connecting(self):
        # The API base is 127.0.0.1: loopback links stay allowed, the other classes not.
        server, daemon = self.start({"slots": {
            REFUSED: {"link_base": "http://169.254.169.254"},
            ALSO_REFUSED: {"link_base": "http://10.255.255.1:{port}"},
            # The link is fine; its redirect goes to 169.254.169.254 spelled as IPv6.
            REDIRECTED: {"redirect": True, "redirect_base": "http://[::ffff:a9fe:a9fe]:{port}"},
            BY_NAME: {"link_base": "http://localhost:{port}"},
        }})
        slots = self.expected()
        self.assertTrue({REFUSED, ALSO_REFUSED, REDIRECTED, BY_NAME} <= set(slots), slots)

        started = time.monotonic()
        self.assert_run_once()
        elapsed = time.monotonic() - started
        errors = self.last_errors()
        for slot, host, why in ((REFUSED, "169.254.169.254", "link-local"),
                                (ALSO_REFUSED, "10.255.255.1", "private"),
                                (REDIRECTED, "::ffff:a9fe:a9fe", "link-local")):
            error = errors.get(slot, "")
            self.assertIn("refused", error, f"{slot}: {error}{self.context()}")
            self.assertIn(host, error, f"{slot}: {error}")
            self.assertIn(why, error, f"{slot}: {error}")
            self.assertIn("allow_private_links", error, f"{slot}: {error}")
            # Refused before any connection, and without the link's signature.
            self.assertNotIn("connecting", error, f"{slot}: {error}")
            self.assertNotIn("sign=", error, f"{slot}: {error}")
        for sign in server.request("/_control/signs")["signs"]:
            self.assertNotIn(sign, daemon.log_text())
        # A refusal is decided locally: no network timeout (5 s each) was waited for.
        self.assertLess(elapsed, 30, f"run --once took {elapsed:.1f} s")
        # The redirect itself was asked (the file host is the fake server); its target was not.
        self.assertEqual(self.downloads_of(server.stats()["downloads_started"], [REDIRECTED]), {})

        good = [s for s in slots if s not in (REFUSED, ALSO_REFUSED, REDIRECTED)]
        self.assert_archived("shop-hourly", good)  # BY_NAME included: localhost is loopback
        for slot in (REFUSED, ALSO_REFUSED, REDIRECTED):
            self.assertFalse(os.path.exists(os.path.join(self.partition("shop-hourly", "visit", slot), "_SUCCESS")))

    def test_loopback_links_are_refused_when_the_api_base_is_not_loopback(self):
        host = outward_address()
        if host is None:
            self.skipTest("this machine has no non-loopback IPv4 address")
        scenario = {"slot_defaults": {"link_base": f"http://{host}:{{port}}"},
                    "slots": {REFUSED: {"link_base": "http://127.0.0.1:{port}"}}}
        self.server = EveryAddressFakeServer(self.aux_dir, scenario, host)
        self.daemon = Daemon(self.run_dir, self.aux_dir, self.server, [hourly_job()])
        slots = self.expected()
        self.assertIn(REFUSED, slots)

        self.assert_run_once()
        stats = self.server.stats()
        # The fake server would have served these links: the daemon never asked.
        self.assertEqual(self.downloads_of(stats["downloads_started"], [REFUSED]), {}, self.context())
        error = self.last_errors().get(REFUSED, "")
        self.assertIn("127.0.0.1", error)
        self.assertIn("loopback", error)
        self.assert_archived("shop-hourly", [s for s in slots if s != REFUSED])

        # Allowed by the config, the same links are fetched.
        self.daemon.edit_config("http: {", "http: {allow_private_links: true, ")
        self.assert_run_once()
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})


if __name__ == "__main__":
    unittest.main()
