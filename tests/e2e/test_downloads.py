"""Downloads that go wrong on the way: truncated bodies, expired links, redirects, 5xx."""

import unittest

from harness import E2ETestCase


class DownloadFaultsTest(E2ETestCase):
    def test_truncated_download_is_retried(self):
        slot = "2026-11-22T15"
        server, daemon = self.start({"slots": {slot: {"truncate_downloads": 1}}})
        slots = self.expected()

        daemon.start()
        self.wait_done("shop-hourly", len(slots), timeout=60)
        self.stop_daemon()

        stats = server.stats()
        started = self.downloads_of(stats["downloads_started"], [slot])
        completed = self.downloads_of(stats["downloads_completed"], [slot])
        self.assertTrue(started)
        for path, count in started.items():
            # Every file of the slot was cut once, then fetched whole.
            self.assertGreaterEqual(count, 2, path)
            self.assertGreaterEqual(completed.get(path, 0), 1, path)
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})

    def test_expired_links_are_refreshed(self):
        slot = "2026-11-22T14"
        server, daemon = self.start({"slots": {slot: {"expired_links_polls": 1}}})
        slots = self.expected()

        daemon.start()
        self.wait_done("shop-hourly", len(slots), timeout=60)
        self.stop_daemon()

        stats = server.stats()
        self.assertGreaterEqual(stats["api_calls"][f"hour/{slot}"], 2)
        # The first links really were refused as expired, and the slot was then fetched
        # whole with fresh ones.
        refused = self.downloads_of(stats["downloads_refused"], [slot])
        self.assertGreaterEqual(sum(refused.values()), 1, f"no download of {slot} was refused: {stats}")
        self.assertTrue(self.downloads_of(stats["downloads_completed"], [slot]))
        others = [s for s in slots if s != slot]
        self.assertEqual(self.downloads_of(stats["downloads_refused"], others), {},
                         "links of slots with good links were refused")
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})

    def test_redirects_and_storage_5xx(self):
        redirected, flaky = "2026-11-22T13", "2026-11-22T16"
        server, daemon = self.start({"slots": {
            redirected: {"redirect": True},
            flaky: {"redirect": True, "download_5xx": 2},
        }})
        slots = self.expected()
        self.assertTrue({redirected, flaky} <= set(slots))

        daemon.start()
        self.wait_done("shop-hourly", len(slots), timeout=90)
        self.stop_daemon()

        stats = server.stats()
        files_in_flaky = sum(len(files) for files in self.truth("shop-hourly", flaky).values())
        self.assertGreater(files_in_flaky, 0, "the flaky slot has no files, so no 5xx to check")
        self.assertGreaterEqual(stats["http_5xx"], 2 * files_in_flaky)
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})


if __name__ == "__main__":
    unittest.main()
