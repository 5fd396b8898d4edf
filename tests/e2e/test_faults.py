"""Faults injected by the fake server, one at a time: a connection reset mid-body, a
stalled body, a corrupt gzip of the right length, 5xx bursts longer than one pass's
tries, a slot that answers ERROR until the vendor re-runs it, and links that expire
seconds after they were handed out. Each time the slot ends archived byte for byte,
with nothing partial ever visible. (Truncated bodies, already-expired links, short
5xx bursts and 429s are in test_downloads.py and test_api_faults.py.)"""

import gzip
import hashlib
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import zlib

from harness import E2ETestCase, hourly_job, wait_for

JOB = "shop-hourly"
# With backfill 3h at harness.NOW (10:10Z) the window holds this one ready slot
# (08:00-09:00 UTC), so a test's downloads never wait behind another slot's.
ONLY_SLOT = "2026-11-22T16"


class FaultsTest(E2ETestCase):
    def download_faults(self, slot):
        return self.downloads_of(self.server.stats()["download_faults"], [slot])

    def file_count(self, slot):
        return sum(len(files) for files in self.truth(JOB, slot).values())

    def assert_clean_finish(self, slots):
        self.assert_archived(JOB, slots)
        self.assert_no_strays({JOB: slots})
        code, gaps = self.daemon.gaps()
        self.assertEqual((code, gaps["gaps"]), (0, []), self.context())
        for slot in slots:
            done = self.daemon.events("slot_done", job=JOB, slot=slot)
            self.assertEqual(len(done), 1, f"{slot}: {done}{self.context()}")

    def download_warnings(self, slot):
        """The daemon's lines about failed downloads of the slot's files."""
        return [line for line in self.daemon.log_text().splitlines()
                if f"slot={slot} download of " in line and " failed (try " in line]

    def test_connection_reset_mid_body(self):
        slot = "2026-11-22T14"
        server, daemon = self.start({"slots": {slot: {"reset_downloads": 1}}})
        slots = self.expected()
        self.assertIn(slot, slots)

        self.assert_run_once()

        # Every file of the slot was cut by a reset once, then served whole.
        faults = self.download_faults(slot)
        self.assertEqual(len(faults), self.file_count(slot), faults)
        self.assertEqual({tuple(f.items()) for f in faults.values()}, {(("reset", 1),)})
        completed = self.downloads_of(server.stats()["downloads_completed"], [slot])
        self.assertEqual(set(completed), set(faults))
        warnings = self.download_warnings(slot)
        self.assertEqual(len(warnings), len(faults), "\n".join(warnings))
        for line in warnings:
            self.assertRegex(line, r"\(try 1 of \d+\): \S+: truncated: .*connection closed after \d+ of \d+ bytes")
        self.assert_clean_finish(slots)

    def test_stalled_body_is_cut_by_the_timeout(self):
        # The stall is far longer than http.timeout: the daemon must give up on the
        # silent connection after 1s, not wait for the server to close it.
        stall_seconds = 12
        server, daemon = self.start({"slot_defaults": {"stall_downloads": 1, "stall_seconds": stall_seconds}},
                                    jobs=[hourly_job(backfill="3h")], parallel_downloads=8, http_timeout="1s")
        self.assertEqual(self.expected(), [ONLY_SLOT])

        started = time.monotonic()
        daemon.start()
        wait_for(lambda: self.download_faults(ONLY_SLOT), 20, "a stalled download")
        # Mid-stall: half a body has arrived, and none of it is visible in the archive.
        self.assert_nothing_partial(JOB, [ONLY_SLOT])
        self.assert_no_strays({JOB: [ONLY_SLOT]}, allow_staging_files=True)
        self.wait_done(JOB, 1, timeout=stall_seconds)
        took = time.monotonic() - started
        self.stop_daemon()

        self.assertLess(took, stall_seconds, "the daemon waited for the stalled bodies to end")
        faults = self.download_faults(ONLY_SLOT)
        self.assertEqual(len(faults), self.file_count(ONLY_SLOT), faults)
        self.assertEqual({tuple(f.items()) for f in faults.values()}, {(("stall", 1),)})
        warnings = self.download_warnings(ONLY_SLOT)
        self.assertEqual(len(warnings), len(faults), "\n".join(warnings))
        for line in warnings:
            self.assertRegex(line, r"\(try 1 of \d+\): .*network: .*no data for 1 ?s after \d+ of \d+ bytes")
        self.assert_clean_finish([ONLY_SLOT])

    def test_corrupt_gzip_of_the_right_length(self):
        slot, probe = "2026-11-22T14", "2026-11-22T13"
        server, daemon = self.start({"slots": {slot: {"corrupt_downloads": 1}, probe: {"corrupt_downloads": 1}}})
        slots = self.expected()

        # The fault itself, seen by a plain client on another slot: the advertised
        # length, every byte of it, but not the file (other sha256, bad gzip).
        code, answer = server.ask("hour", probe)
        self.assertEqual((code, answer["status"]), (200, "FINISHED"))
        url = answer["downloadLinks"]["visit"][0]
        want = self.truth(JOB, probe)["visit"][0]
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
            self.assertEqual(int(response.headers["Content-Length"]), want["bytes"])
        self.assertEqual(len(body), want["bytes"])
        self.assertNotEqual(hashlib.sha256(body).hexdigest(), want["sha256"])
        with self.assertRaises((OSError, EOFError, zlib.error)):
            gzip.decompress(body)

        self.assert_run_once()

        faults = self.download_faults(slot)
        self.assertEqual(len(faults), self.file_count(slot), faults)
        self.assertEqual({tuple(f.items()) for f in faults.values()}, {(("corrupt", 1),)})
        warnings = self.download_warnings(slot)
        self.assertEqual(len(warnings), len(faults), "\n".join(warnings))
        for line in warnings:
            self.assertRegex(line, r"\(try 1 of \d+\): \S+: corrupt: ")
        self.assertEqual(self.staging_files(), [])
        self.assert_clean_finish(slots)

    def test_5xx_bursts_longer_than_one_pass(self):
        # More 503s per file than one pass tries, and more 502s for a slot's asks than
        # one pass makes: both slots are put off with backoff and finished later.
        storage, api = "2026-11-22T14", "2026-11-22T15"
        server, daemon = self.start({"slots": {storage: {"download_5xx": 4}, api: {"api_5xx": 3}}})
        slots = self.expected()
        self.assertTrue({storage, api} <= set(slots))

        daemon.start()
        self.wait_done(JOB, len(slots), timeout=60)
        self.stop_daemon()

        faults = self.download_faults(storage)
        self.assertEqual(len(faults), self.file_count(storage), faults)
        self.assertEqual({tuple(f.items()) for f in faults.values()}, {(("download_5xx", 4),)})
        self.assertEqual(server.stats()["api_faults"], {f"hour/{api}": {"api_5xx": 3}})
        retries = daemon.events("slot_retry", job=JOB, slot=storage)
        self.assertTrue(retries, self.context())
        self.assertIn("server", retries[0]["reason"])
        # Three 502s in a row are one problem: one warning, then one line when it is over
        # that counts the retries not logged.
        retries = daemon.events("slot_retry", job=JOB, slot=api)
        self.assertEqual(len(retries), 1, f"{retries}{self.context()}")
        self.assertIn("502", retries[0]["reason"])
        self.assertEqual(retries[0]["attempt"], "1")
        recovered = daemon.events("slot_recovered", job=JOB, slot=api)
        self.assertEqual(len(recovered), 1, f"{recovered}{self.context()}")
        self.assertIn("502", recovered[0]["previous"])
        self.assertEqual(recovered[0]["repeated"], "2")
        self.assert_clean_finish(slots)

    def test_error_until_the_vendor_reruns_the_export(self):
        slot = "2026-11-22T15"
        server, daemon = self.start({"slots": {slot: {"status": "ERROR"}}})
        slots = self.expected()
        others = [s for s in slots if s != slot]

        daemon.start()
        self.wait_done(JOB, len(others), timeout=60)
        # ERROR is not final: the slot is asked again every poll_every, and shown.
        calls = server.stats()["api_calls"][f"hour/{slot}"]
        wait_for(lambda: server.stats()["api_calls"][f"hour/{slot}"] >= calls + 2, 20, "two more asks")
        code, gaps = daemon.gaps()
        self.assertEqual(code, 2)
        self.assertEqual([(g["slot"], g["api_status"]) for g in gaps["gaps"]], [(slot, "ERROR")], gaps)
        self.assertIn("ERROR", gaps["gaps"][0]["last_error"])
        self.assertNotEqual(gaps["gaps"][0]["state"], "failed", gaps)
        self.assert_archived(JOB, others)
        self.assertEqual(self.download_faults(slot), {})
        self.assertFalse(self.downloads_of(server.stats()["downloads_started"], [slot]))

        server.scenario({"slots": {slot: {"status": "FINISHED"}}})
        self.wait_done(JOB, len(slots), timeout=30)
        self.stop_daemon()
        # Asked at every poll, warned about once (test_logs.py looks closer).
        self.assertEqual(len(daemon.events("slot_retry", job=JOB, slot=slot)), 1, self.context())
        recovered = daemon.events("slot_recovered", job=JOB, slot=slot)
        self.assertEqual(len(recovered), 1, self.context())
        self.assertGreaterEqual(int(recovered[0]["repeated"]), 2)
        self.assert_clean_finish(slots)

    def test_links_that_expire_seconds_after_the_answer(self):
        # Links live 0.8s. Each file's first GET is a 503, and the daemon's pause before
        # the next try (1s) outlives the link: that try is refused as expired, the
        # daemon asks for fresh links, and the next GET gets the file.
        server, daemon = self.start({"slots": {ONLY_SLOT: {"link_expire_seconds": 0.8, "download_5xx": 1}}},
                                    jobs=[hourly_job(backfill="3h")], parallel_downloads=8)
        self.assertEqual(self.expected(), [ONLY_SLOT])

        self.assert_run_once()

        stats = server.stats()
        faults = self.download_faults(ONLY_SLOT)
        self.assertEqual(len(faults), self.file_count(ONLY_SLOT), faults)
        refused = self.downloads_of(stats["downloads_refused"], [ONLY_SLOT])
        completed = self.downloads_of(stats["downloads_completed"], [ONLY_SLOT])
        # The links did work (the 503 came from the storage, past the link check), and
        # the same file was then refused with that link: it expired on its own.
        self.assertTrue(refused, stats)
        self.assertTrue(set(refused) <= set(faults))
        self.assertEqual(set(completed), set(faults))
        self.assertGreaterEqual(stats["api_calls"][f"hour/{ONLY_SLOT}"], 2)
        self.assertIn("download links expired or were refused", daemon.log_text())
        self.assert_clean_finish([ONLY_SLOT])

    def test_expired_link_is_refused_by_the_server(self):
        # The server's own side of link expiry, checked without the daemon: a link is
        # good until link_expire_seconds have passed, then refused with a 403.
        slot = "2026-11-22T13"
        server, _ = self.start({"link_expire_seconds": 1.5})
        code, answer = server.ask("hour", slot)
        self.assertEqual((code, answer["status"]), (200, "FINISHED"))
        url = answer["downloadLinks"]["page"][0]
        expires_ms = int(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["expires"][0])
        with urllib.request.urlopen(url, timeout=30) as response:
            self.assertEqual(response.status, 200)
            response.read()
        wait_for(lambda: server.request("/_control/now")["now_ms"] > expires_ms, 10, "the link's expiry")
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=30)
        self.assertEqual(refused.exception.code, 403)


if __name__ == "__main__":
    unittest.main()
