"""User lists (resource: segmentations | tags) as chart-job configuration: "doing" until
done, then every downloadLinks file through the raw download path into
<job>/<id>/dt=.../ with _manifest.json and _SUCCESS."""

import datetime as dt
import json
import os
import unittest
import urllib.parse

from harness import MARKERS, E2ETestCase, partition_rel, sha256_file


def list_job(name="shop-segments", **overrides):
    job = {"name": name, "project": "shop", "kind": "chart", "resource": "segmentations",
           "charts": ["seg1"], "granularity": "day", "ready_after": "6h", "poll_every": "1s",
           "give_up_after": "24h", "backfill": "2d"}
    job.update(overrides)
    return job


class UserListTest(E2ETestCase):
    def truth(self, resource, list_id):
        query = urllib.parse.urlencode({"resource": resource, "id": list_id})
        return self.server.request(f"/_control/user-list?{query}")

    def assert_list_archived(self, job, list_id, slot):
        path = os.path.join(self.daemon.archive, partition_rel(job["name"], list_id, slot))
        where = f"{job['name']} {list_id} {slot}"
        self.assertTrue(os.path.isdir(path), f"missing partition {where}{self.context()}")
        want = {entry["link_name"]: (entry["bytes"], entry["sha256"])
                for entry in self.truth(job["resource"], list_id)}
        self.assertEqual(sorted(os.listdir(path)), sorted([*want, *MARKERS]), where)
        on_disk = {name: (os.path.getsize(os.path.join(path, name)), sha256_file(os.path.join(path, name)))
                   for name in want}
        self.assertEqual(on_disk, want, f"files of {where} are not the served bytes")
        self.assertEqual(os.path.getsize(os.path.join(path, "_SUCCESS")), 0)
        with open(os.path.join(path, "_manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        self.assertEqual((manifest["job"], manifest["data_type"], manifest["slot"]),
                         (job["name"], list_id, slot))
        listed = {entry["name"]: (entry["bytes"], entry["sha256"]) for entry in manifest["files"]}
        self.assertEqual(listed, want, f"_manifest.json of {where}")

    def test_segmentation_job_polls_doing_then_archives_files(self):
        job = list_job(parameters="城市=北京&x=1")
        server, daemon = self.start({"user_lists": {"seg1": {"doing_polls": 2, "parts": 3}}}, jobs=[job])
        self.assertEqual(self.expected(job), ["2026-11-21"])
        slot = "2026-11-21"

        # Two passes see "doing"; the third (each after poll_every on the daemon's clock)
        # finds the list done and archives it.
        for i in range(3):
            self.assert_run_once(now=server.now() + dt.timedelta(seconds=5 * i))
            counts = daemon.job_status(job["name"])["counts"]
            if i < 2:
                self.assertEqual(counts.get("waiting"), 1, f"pass {i}: {counts}{self.context()}")
        self.assertEqual(daemon.job_status(job["name"])["counts"].get("done"), 1, self.context())
        self.assert_list_archived(job, "seg1", slot)

        stats = server.stats()
        self.assertEqual(stats["user_list_calls"], {"segmentations/seg1": 3})
        for request in stats["user_list_requests"]:
            self.assertEqual(request["query"], {"expire": "60", "parameters": "城市=北京&x=1"})
        # A finished slot is not asked again.
        self.assert_run_once(now=server.now() + dt.timedelta(seconds=30))
        self.assertEqual(server.stats()["user_list_calls"], {"segmentations/seg1": 3})

    def test_failed_is_retried_and_expired_links_are_asked_again(self):
        job = list_job("shop-tags", resource="tags", charts=["tagA", "tagB"])
        server, daemon = self.start({"user_lists": {"tagA": {"failed_polls": 2},
                                                    "tagB": {"expired_links_polls": 1}}},
                                    jobs=[job])
        slot = "2026-11-21"

        # tagA failed (retried like a raw ERROR); tagB done but its links had expired:
        # asked again at once, archived in the same pass.
        self.assert_run_once()
        status = daemon.job_status(job["name"])["counts"]
        self.assertEqual(status.get("pending"), 1, f"{status}{self.context()}")
        self.assert_list_archived(job, "tagB", slot)
        self.assertFalse(os.path.exists(os.path.join(daemon.archive, partition_rel(job["name"], "tagA", slot))))

        self.assert_run_once(now=server.now() + dt.timedelta(seconds=5))
        self.assertEqual(daemon.job_status(job["name"])["counts"].get("done"), 1, self.context())
        self.assert_list_archived(job, "tagA", slot)
        # tagB, archived in the first pass, is never asked again.
        self.assertEqual(server.stats()["user_list_calls"], {"tags/tagA": 3, "tags/tagB": 2})


if __name__ == "__main__":
    unittest.main()
