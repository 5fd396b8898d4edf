"""Signed-code auth: POST /auth/token with an HMAC signature, the code cached in the
state database and reused across restarts, one new code after the server invalidates
it, and a wrong private key failing the slots clearly without leaking a secret."""

import json
import unittest

from harness import E2ETestCase

CLIENT_ID = "test-client-id"
PRIVATE_KEY = "test-private-key-7f3a9c"  # the fake server's scenario key matches it


class SignedCodeAuthTest(E2ETestCase):
    def start_signed(self, scenario=None, key=PRIVATE_KEY, requests_per_second=None):
        scenario = dict(scenario or {})
        scenario.setdefault("private_key", PRIVATE_KEY)
        scenario.setdefault("client_id", CLIENT_ID)
        # No token is accepted, so only signed codes get through.
        scenario.setdefault("token", "no-token-accepted-here")
        server, daemon = self.start(scenario)
        self.use_signed_codes(daemon, CLIENT_ID, key, requests_per_second)
        self.codes = set()
        return server, daemon

    def cached_code(self):
        code = self.cached_auth_code()
        if code is not None:
            self.codes.add(code)
        return code

    def run_pass(self):
        result = self.assert_run_once()
        self.cached_code()
        return result

    def assert_no_secrets(self, *outputs):
        secrets = {PRIVATE_KEY, "wrong-private-key"} | self.codes
        for text in outputs:
            for secret in secrets:
                self.assertNotIn(secret, text, "a secret appears in the daemon's output")

    def test_backlog_is_archived_with_one_code(self):
        server, daemon = self.start_signed()
        slots = self.expected()
        result = self.run_pass()

        self.assert_archived("shop-hourly", slots)
        stats = server.stats()
        self.assertEqual((stats["auth_token_calls"], stats["auth_token_refused"]), (1, 0))
        self.assertIsNotNone(self.cached_code(), "the code is not cached in the state database")
        self.assert_no_secrets(result.stdout, result.stderr)

    def test_code_is_reused_across_a_restart(self):
        # Every slot is RUNNING at its first ask, so the second process must call the API.
        server, daemon = self.start_signed({"slot_defaults": {"running_polls": 1}})
        slots = self.expected()
        first = self.run_pass()
        self.assertEqual(server.stats()["auth_token_calls"], 1)
        code = self.cached_code()

        daemon.start()
        self.wait_done("shop-hourly", len(slots), timeout=30)
        self.stop_daemon()

        stats = server.stats()
        self.assertEqual(stats["auth_token_calls"], 1, "the restarted daemon asked for a new code")
        self.assertTrue(all(n >= 2 for n in stats["api_calls"].values()), stats["api_calls"])
        self.assertEqual(self.cached_code(), code)
        self.assert_archived("shop-hourly", slots)
        with open(daemon.log_path, encoding="utf-8") as f:
            self.assert_no_secrets(first.stdout, first.stderr, f.read())

    def test_one_new_code_after_the_server_invalidates_it(self):
        # A fast limit, so the second pass's asks overlap and all meet the dead code.
        server, daemon = self.start_signed({"slot_defaults": {"running_polls": 1}}, requests_per_second=50)
        slots = self.expected()
        self.assertGreaterEqual(len(slots), 3)
        first = self.run_pass()
        old = self.cached_code()
        self.assertEqual(server.stats()["auth_token_calls"], 1)

        server.request("/_control/invalidate-code", {})
        daemon.start()
        self.wait_done("shop-hourly", len(slots), timeout=30)
        self.stop_daemon()
        with open(daemon.log_path, encoding="utf-8") as f:
            second = f.read()

        stats = server.stats()
        self.assertEqual(stats["auth_token_calls"], 2, "expected exactly one new /auth/token call")
        self.assertNotEqual(self.cached_code(), old)
        counts = daemon.job_status("shop-hourly")["counts"]
        self.assertEqual(counts.get("done", 0), len(slots), counts)
        self.assert_archived("shop-hourly", slots)
        self.assertIn("the signed code was refused", second)
        self.assert_no_secrets(first.stdout, first.stderr, second)

    def test_wrong_private_key_fails_the_slots_naming_the_project(self):
        server, daemon = self.start_signed(key="wrong-private-key")
        slots = self.expected()
        # The pass ran and failed every slot: exit status 3.
        result = daemon.run_once()
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.cached_code()

        stats = server.stats()
        # Refused once: asking again with the same key could not succeed.
        self.assertEqual((stats["auth_token_calls"], stats["auth_token_refused"]), (1, 1))
        self.assertEqual(stats["api_calls"], {})
        code, gaps = daemon.gaps(job="shop-hourly")
        self.assertEqual(code, 2)
        self.assertEqual([g["slot"] for g in gaps["gaps"]], slots)
        for gap in gaps["gaps"]:
            self.assertEqual(gap["state"], "failed", gap)
            self.assertIn("project shop", gap["last_error"])
            self.assertIn("refused the signed request", gap["last_error"])
        self.assertIsNone(self.cached_code())
        output = result.stdout + result.stderr
        self.assertIn("event=slot_failed", output)
        self.assertIn("private key", output)
        self.assert_no_secrets(output, json.dumps(gaps))


if __name__ == "__main__":
    unittest.main()
