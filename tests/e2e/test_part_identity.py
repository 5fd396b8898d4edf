"""A part is its object, not its name: answers whose links change between passes (other
order, a re-run under the same file names) never mix parts of two objects, and data
types the vendor adds are archived under their own names."""

import collections
import json
import os
import unittest

from harness import E2ETestCase, hourly_job, wait_for

JOB = "shop-hourly"


class PartIdentityTest(E2ETestCase):
    def run_to_done(self, scenario, backfill="4h"):
        server, daemon = self.start(scenario, jobs=[hourly_job(backfill=backfill)])
        slots = self.expected()
        daemon.start()
        self.wait_done(JOB, len(slots), timeout=60)
        self.stop_daemon()
        return server, daemon, slots

    def assert_manifests_list_each_content_once(self, slots):
        for slot in slots:
            for data_type in self.truth(JOB, slot):
                with open(os.path.join(self.partition(JOB, data_type, slot), "_manifest.json"),
                          encoding="utf-8") as f:
                    files = json.load(f)["files"]
                for key in ("name", "sha256"):
                    twice = [v for v, n in collections.Counter(e[key] for e in files).items() if n > 1]
                    self.assertEqual(twice, [], f"{slot} {data_type}: a {key} listed twice")

    def test_links_reordered_between_answers_are_not_mixed(self):
        # Two objects whose names collide, of the same size; the second fails in the first
        # pass, and the next answer lists them the other way round.
        slot = "2026-11-22T16"
        scenario = {"rows": 50, "slots": {slot: {
            "uniform_size": True, "link_order": "alternate",
            "link_names": {"visit": ["x.csv.gz", "x.csv.gz"]},
            "broken_parts": {"visit": [1]}, "broken_answers": 1}}}
        server, daemon, slots = self.run_to_done(scenario)
        self.assertIn(slot, slots)
        self.assertGreaterEqual(server.stats()["api_calls"][f"hour/{slot}"], 2,
                                "the slot was answered once")
        sizes = {f["bytes"] for f in self.truth(JOB, slot)["visit"]}
        self.assertEqual(len(sizes), 1, "the two parts should have the same size")
        self.assert_archived(JOB, slots)
        self.assert_manifests_list_each_content_once(slots)
        self.assert_no_strays({JOB: slots})

    def test_a_rerun_under_the_same_names_replaces_the_earlier_parts(self):
        # The vendor re-runs the export between two answers: the same file names, other
        # objects, other bytes of the same size.
        slot = "2026-11-22T16"
        scenario = {"rows": 50, "slots": {slot: {
            "uniform_size": True, "rerun_every": 1,
            "link_names": {"visit": ["x.csv.gz", "y.csv.gz"], "page": ["p.csv.gz"]},
            "broken_parts": {"visit": [1]}, "broken_answers": 1}}}
        server, daemon, slots = self.run_to_done(scenario)
        stats = server.stats()
        # The first answer's x.csv.gz was archived, then its re-run replaced it.
        first = [p for p in stats["downloads_completed"] if f"/{slot}/visit/0/" in p]
        self.assertEqual(len(first), 1, stats["downloads_completed"])
        self.assert_archived(JOB, slots)
        self.assert_manifests_list_each_content_once(slots)
        self.assert_no_strays({JOB: slots})

    def test_an_unknown_data_type_is_archived_and_named_once(self):
        server, daemon, slots = self.run_to_done({"rows": 50, "parts": {"adsTrackClick": 1}})
        self.assertGreater(len(slots), 1)
        self.assertIn("adsTrackClick", self.truth(JOB, slots[0]))
        self.assert_archived(JOB, slots)
        self.assert_no_strays({JOB: slots})
        warned = daemon.events("unknown_data_type", job=JOB)
        # Once for the job, not once per slot or part.
        self.assertEqual([e["data_type"] for e in warned], ["adsTrackClick"], warned)

    def test_a_type_without_a_safe_folder_name_fails_its_slot_naming_it(self):
        slot = "2026-11-22T16"
        server, daemon = self.start({"rows": 50, "slots": {slot: {"parts": {"bad type": 1}}}},
                                    jobs=[hourly_job(backfill="4h")])
        slots = self.expected()
        others = [s for s in slots if s != slot]
        daemon.start()
        self.wait_done(JOB, len(others), timeout=60)

        def failed():
            return daemon.job_status(JOB)["counts"].get("failed", 0) == 1
        wait_for(failed, 30, f"{slot} failed")
        self.stop_daemon()
        events = daemon.events("slot_failed", job=JOB)
        self.assertEqual([e["slot"] for e in events], [slot], events)
        self.assertIn('"bad type"', events[0]["reason"])
        self.assert_archived(JOB, others)
        # The slot's types with safe names are archived all the same.
        for data_type, want in self.truth(JOB, slot).items():
            if data_type != "bad type":
                self.assert_partition_complete(JOB, slot, data_type, want)
        self.assertFalse(os.path.exists(os.path.join(daemon.archive, JOB, "bad type")))


if __name__ == "__main__":
    unittest.main()
