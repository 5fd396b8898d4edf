"""The export API itself misbehaving: 429 with Retry-After, and 5xx bursts; a permanent
refusal, which `run --once` reports in its exit status."""

import unittest

from harness import TOKEN, E2ETestCase

# `run --once`: the pass ran, but slots failed or were lost in it.
EXIT_SLOTS_FAILED = 3


class ApiFaultsTest(E2ETestCase):
    def test_429_with_retry_after_and_5xx_still_complete(self):
        # The first 3 API calls answer 429 (Retry-After: 1), the next 2 answer 502.
        server, daemon = self.start({"api_429_first": 3, "api_5xx_first": 2, "retry_after": 1})
        slots = self.expected()

        daemon.start()
        self.wait_done("shop-hourly", len(slots), timeout=60)
        self.stop_daemon()

        stats = server.stats()
        self.assertEqual(stats["http_429"], 3)
        self.assertGreaterEqual(stats["http_5xx"], 2)
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})
        code, gaps = daemon.gaps()
        self.assertEqual((code, gaps["gaps"]), (0, []))

    def test_run_once_exits_3_when_the_api_refuses_and_0_once_it_is_fixed(self):
        # The server wants another token: every ask is answered 401, a permanent
        # refusal, so every slot of the pass fails at once.
        server, daemon = self.start({"token": "the-token-the-server-wants"})
        slots = self.expected()
        first = daemon.run_once()
        output = first.stdout + first.stderr
        self.assertEqual(first.returncode, EXIT_SLOTS_FAILED, output)
        self.assertIn("HTTP 401", output)
        self.assertIn(f"pass complete: {len(slots)} slot(s) failed, 0 lost (exit status 3", output)
        self.assertEqual(sorted(e["slot"] for e in daemon.events("slot_failed")), slots)
        counts = daemon.job_status("shop-hourly")["counts"]
        self.assertEqual(counts["failed"], len(slots), counts)
        calls = sum(server.stats()["api_calls"].values())

        # The next pass fails nothing new (failed slots wait for `retry`): 0, and the
        # API is not asked again.
        again = daemon.run_once()
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        self.assertEqual(sum(server.stats()["api_calls"].values()), calls)

        # Fixed, and re-queued: the pass archives everything and exits 0.
        server.scenario({"token": TOKEN})
        retry = daemon.cli("retry", "--job", "shop-hourly", "--failed")
        self.assertEqual(retry.returncode, 0, retry.stdout + retry.stderr)
        self.assert_run_once()
        self.assert_archived("shop-hourly", slots)


if __name__ == "__main__":
    unittest.main()
