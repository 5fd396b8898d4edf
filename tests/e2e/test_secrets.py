"""No secret in any output at debug level, token auth: the API token and the sign= of
every download link never appear in the daemon's log, nor in `status`, `gaps` or
`check-config`. The signed code and private key of signed-code auth are checked the
same way by test_auth.SignedCodeAuthTest (assert_no_secrets)."""

import unittest

from harness import TOKEN, E2ETestCase


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


if __name__ == "__main__":
    unittest.main()
