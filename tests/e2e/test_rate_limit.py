"""The vendor's rate limit: a backlog fetched at the configured 2 requests per second
from a server that enforces exactly that gets no 429, and a server stricter than the
configuration (429 with Retry-After) only slows the run down."""

import unittest

from harness import E2ETestCase, hourly_job

# Small parts keep the run about the API calls: one file per slot, the other types empty.
SMALL = {"parts": {"visit": 1, "page": 0, "custom_event": 0, "action": 0}, "rows": 5}


class RateLimitTest(E2ETestCase):
    def set_rate(self, daemon, requests_per_second):
        with open(daemon.config, encoding="utf-8") as f:
            config = f.read()
        config = config.replace("limits: {", f"limits: {{api_requests_per_second: {requests_per_second}, ")
        self.assertIn(f"api_requests_per_second: {requests_per_second}", config)
        with open(daemon.config, "w", encoding="utf-8") as f:
            f.write(config)

    def test_backlog_of_48_hourly_slots_at_2_per_second_gets_no_429(self):
        server, daemon = self.start(dict(SMALL, enforce_rate=True, rate_limit=2),
                                    jobs=[hourly_job(backfill="50h")])
        slots = self.expected()
        self.assertGreaterEqual(len(slots), 48)

        self.assert_run_once(timeout=60)

        stats = server.stats()
        self.assertEqual(stats["http_429"], 0, self.context())
        self.assertGreaterEqual(sum(stats["api_calls"].values()), len(slots))
        self.assert_archived("shop-hourly", slots)
        code, gaps = daemon.gaps()
        self.assertEqual((code, gaps["gaps"]), (0, []))

    def test_a_server_stricter_than_the_config_only_slows_the_run(self):
        # The server allows 1 request per second, the daemon is configured for 2: it is
        # answered 429 with Retry-After: 1, pauses the project and still finishes.
        server, daemon = self.start(dict(SMALL, enforce_rate=True, rate_limit=1))
        self.set_rate(daemon, 2)
        slots = self.expected()

        daemon.start()
        self.wait_done("shop-hourly", len(slots), timeout=60)
        self.stop_daemon()

        stats = server.stats()
        self.assertGreater(stats["http_429"], 0)
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})
        code, gaps = daemon.gaps()
        self.assertEqual((code, gaps["gaps"]), (0, []))

    # A server answering its first calls 429 with Retry-After regardless of the rate is
    # covered by test_api_faults.ApiFaultsTest.


if __name__ == "__main__":
    unittest.main()
