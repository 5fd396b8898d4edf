"""The export API itself misbehaving: 429 with Retry-After, and 5xx bursts."""

import unittest

from harness import E2ETestCase


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


if __name__ == "__main__":
    unittest.main()
