"""A full disk (simulated with RLIMIT_FSIZE, which fails writes past a size with EFBIG
just as a full file system fails them with ENOSPC): downloads pause, logged once; the
slot is never marked done and no partial file becomes visible; once space is back the
slot is archived byte for byte."""

import resource
import unittest

from harness import E2ETestCase, hourly_job, wait_for

# Big enough that the part cannot be written under the limit while the state database
# (a few small WAL frames per change) stays far below it for the whole test.
ROWS = 50000
ONE_PART = {"visit": 1, "page": 0, "custom_event": 0, "action": 0}


class DiskFullTest(E2ETestCase):
    def test_downloads_pause_until_space_is_back(self):
        server, daemon = self.start({"rows": ROWS, "parts": ONE_PART},
                                    jobs=[hourly_job(backfill="3h")])
        slots = self.expected()
        self.assertEqual(len(slots), 1)
        size = server.files("hour", slots[0])["visit"][0]["bytes"]  # generated here, not mid-test
        limit = size - 256 * 1024
        self.assertGreater(limit, 1024 * 1024, "the part must dwarf the state database")

        daemon.start(preexec_fn=lambda: resource.setrlimit(
            resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY)))
        wait_for(lambda: len(daemon.events("downloads_paused")) >= 1, 30, "event=downloads_paused")
        # The pause lapses and the download is tried (and fails) again: still one event.
        wait_for(lambda: daemon.log_text().count("download of ") >= 2, 30, "a second try")
        self.assertTrue(daemon.running(), self.context())
        paused = daemon.events("downloads_paused")
        self.assertEqual(len(paused), 1, self.context())
        self.assertIn("File too large", paused[0]["reason"])
        self.assertEqual(daemon.job_status("shop-hourly")["counts"]["done"], 0)
        self.assert_nothing_partial("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots}, allow_staging_files=True)

        # Space comes back: the same process finishes the slot.
        resource.prlimit(daemon.process.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        self.wait_done("shop-hourly", 1)
        self.assertEqual(len(daemon.events("downloads_resumed")), 1, self.context())
        self.stop_daemon()
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})


if __name__ == "__main__":
    unittest.main()
