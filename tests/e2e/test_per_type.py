"""Raw jobs that name their data types ask the per-type endpoint, one call per type and
slot; jobs of all types keep every type the all-types answer lists, unknown ones too."""

import datetime as dt
import os
import unittest

from harness import E2ETestCase, hourly_job

TYPES = ["visit", "custom_event"]


class PerTypeTest(E2ETestCase):
    def archived_types(self, job):
        folder = os.path.join(self.daemon.archive, job)
        return {name for name in os.listdir(folder) if not name.startswith(".")}

    def test_named_types_are_asked_one_by_one_and_archived_byte_exact(self):
        server, daemon = self.start(jobs=[hourly_job(data_types=TYPES, backfill="4h")])
        slots = self.expected()
        self.assertGreater(len(slots), 1)

        self.assert_run_once()
        for slot in slots:
            truth = self.truth("shop-hourly", slot)
            for data_type in TYPES:
                self.assertTrue(truth[data_type], f"the scenario serves no {data_type} files")
                self.assert_partition_complete("shop-hourly", slot, data_type, truth[data_type])
        self.assertEqual(self.archived_types("shop-hourly"), set(TYPES))
        counts = daemon.job_status("shop-hourly")["counts"]
        self.assertEqual(counts.get("done"), len(slots))

        # Only per-type asks, exactly one per type and slot (each was FINISHED at once).
        stats = server.stats()
        self.assertEqual(stats["api_calls_per_type"],
                         {f"hour/{slot}/{t}": 1 for slot in slots for t in TYPES})
        self.assertEqual(sum(stats["api_calls"].values()), len(slots) * len(TYPES))

    def test_the_slot_follows_a_type_that_is_not_ready(self):
        running, failing = "2026-11-22T15", "2026-11-22T16"
        server, daemon = self.start(
            {"slots": {running: {"type_status": {"custom_event": "RUNNING"}},
                       failing: {"type_status": {"visit": "ERROR"}}}},
            jobs=[hourly_job(data_types=TYPES, backfill="4h")])
        slots = self.expected()
        self.assertIn(running, slots)
        self.assertIn(failing, slots)

        self.assert_run_once()
        code, gaps = daemon.gaps(job="shop-hourly")
        self.assertEqual(code, 2)
        by_slot = {gap["slot"]: gap for gap in gaps["gaps"]}
        self.assertEqual(set(by_slot), {running, failing})
        self.assertEqual((by_slot[running]["state"], by_slot[running]["api_status"]),
                         ("waiting", "RUNNING"))
        self.assertEqual(by_slot[failing]["api_status"], "ERROR")
        self.assertIn("ERROR", by_slot[failing]["last_error"])
        # Nothing of a slot is archived while one of its types is not ready, not even
        # the finished type.
        for slot in (running, failing):
            for data_type in TYPES:
                self.assertFalse(os.path.exists(self.partition("shop-hourly", data_type, slot)),
                                 f"{data_type} of {slot} archived before every type was ready")

        server.scenario({"slots": {running: {"type_status": {"custom_event": "FINISHED"}},
                                   failing: {"type_status": {"visit": "FINISHED"}}}})
        # Past poll_every, so both slots are due again.
        self.assert_run_once(now=server.now() + dt.timedelta(seconds=30))
        for slot in slots:
            truth = self.truth("shop-hourly", slot)
            for data_type in TYPES:
                self.assert_partition_complete("shop-hourly", slot, data_type, truth[data_type])
        self.assertEqual(daemon.gaps(job="shop-hourly")[1]["gaps"], [])
        self.assertEqual(self.archived_types("shop-hourly"), set(TYPES))

    def test_unknown_types_of_an_all_types_answer_are_archived(self):
        server, daemon = self.start({"parts": {"web_vitals": 2}}, jobs=[hourly_job(backfill="4h")])
        slots = self.expected()

        self.assert_run_once()
        for slot in slots:
            truth = self.truth("shop-hourly", slot)
            self.assertEqual(len(truth["web_vitals"]), 2)
            self.assert_partition_complete("shop-hourly", slot, "web_vitals", truth["web_vitals"])
        self.assert_archived("shop-hourly", slots)
        self.assertIn("web_vitals", self.archived_types("shop-hourly"))
        self.assertEqual(server.stats()["api_calls_per_type"], {})


if __name__ == "__main__":
    unittest.main()
