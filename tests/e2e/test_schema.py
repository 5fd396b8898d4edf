"""The schema watch (issue 16): a data type's header changes mid-run. The change is
stored, warned about once (event=schema_changed, the metric, the on_schema_change hook),
and `schema` and `status` show it; the slots after it with the same header say nothing."""

import datetime as dt
import json
import os
import re
import unittest

from harness import E2ETestCase, free_port, hourly_job, slot_start, wait_for

JOB = "shop-hourly"
USUAL = ["session_id", "user_id", "visit_time", "platform", "browser", "city", "channel", "title"]
CHANGED = [name for name in USUAL if name != "channel"] + ["sdk_version"]
# The daemon's clock runs three hours behind the server's (18:10 in Beijing), then two,
# then level: each step makes new slots ready (ready_after 40m), oldest first.
FIRST, CHANGE, LATER = ["2026-11-22T12", "2026-11-22T13"], "2026-11-22T14", ["2026-11-22T15", "2026-11-22T16"]


class SchemaTest(E2ETestCase):
    def test_a_header_change_is_stored_and_announced_once(self):
        hook_out = os.path.join(self.aux_dir, "hook.out")
        job = hourly_job(data_types=["visit"], backfill="4h",
                         on_schema_change=f"env | grep ^GIO_ | sort > {hook_out}.$GIO_SLOT")
        server, daemon = self.start({"rows": 20, "header_changes": {
            "visit": {"from_slot": CHANGE, "drop": ["channel"], "add": ["sdk_version"]}}}, jobs=[job])
        now = server.now()

        # Two slots with the usual header: the first header is recorded, silently.
        self.assert_run_once(now=now - dt.timedelta(hours=3))
        self.assertEqual(daemon.job_status(JOB)["counts"]["done"], 2, self.context())
        self.assertEqual(daemon.events("schema_changed"), [])
        history = self.history()
        self.assertEqual([(row["since_slot"], row["columns"], row["change"]) for row in history],
                         [(FIRST[0], USUAL, None)])

        # The running daemon archives the slot whose header changed: one warning, the
        # counter, the hook with the change in its environment.
        metrics = self.enable_metrics()
        daemon.start(env={"GIO_EXPORTER_NOW": (now - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")})
        self.wait_done(JOB, 3)
        changed = daemon.events("schema_changed")
        self.assertEqual(len(changed), 1, self.context())
        self.assertEqual({key: changed[0][key] for key in ("job", "type", "slot", "added", "removed", "reordered")},
                         {"job": JOB, "type": "visit", "slot": CHANGE, "added": "sdk_version",
                          "removed": "channel", "reordered": "false"})
        text = wait_for(lambda: self.schema_metrics(metrics), 10, "the schema metrics")
        self.assertEqual(self.sample(text, "gio_schema_changes_total"), 1.0)
        self.assertEqual(self.sample(text, "gio_schema_since_timestamp_seconds"),
                         slot_start(CHANGE).timestamp())
        hook = wait_for(lambda: self.read(f"{hook_out}.{CHANGE}"), 10, "the on_schema_change hook")
        self.assertEqual({key: hook.get(key) for key in ("GIO_EVENT", "GIO_JOB", "GIO_SLOT", "GIO_DATA_TYPE",
                                                          "GIO_ADDED", "GIO_REMOVED", "GIO_REORDERED",
                                                          "GIO_COLUMNS")},
                         {"GIO_EVENT": "schema_changed", "GIO_JOB": JOB, "GIO_SLOT": CHANGE,
                          "GIO_DATA_TYPE": "visit", "GIO_ADDED": "sdk_version", "GIO_REMOVED": "channel",
                          "GIO_REORDERED": "false", "GIO_COLUMNS": ",".join(CHANGED)})
        self.assertEqual(daemon.terminate()[0], 0)

        # Later slots with the new header (and a restart): nothing more is said.
        self.assert_run_once(now=now)
        self.assertEqual(daemon.job_status(JOB)["counts"]["done"], 5, self.context())
        self.assertEqual(len(daemon.events("schema_changed")), 1, self.context())
        self.assertEqual(sorted(name for name in os.listdir(self.aux_dir) if name.startswith("hook.out")),
                         [f"hook.out.{CHANGE}"])
        for slot in LATER:
            manifest = self.manifest(slot)
            self.assertEqual({tuple(f["columns"]) for f in manifest["files"]}, {tuple(CHANGED)})

        history = self.history()
        self.assertEqual([(row["since_slot"], row["columns"]) for row in history],
                         [(FIRST[0], USUAL), (CHANGE, CHANGED)])
        self.assertEqual(history[1]["change"],
                         {"added": ["sdk_version"], "removed": ["channel"], "reordered": False})
        text = daemon.cli("schema", "--job", JOB, "--type", "visit")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn(f"since {CHANGE}", text.stdout)
        self.assertIn("added=sdk_version removed=channel reordered=false", text.stdout)

        # status: the current header's age, from the start of its first slot.
        at = slot_start(CHANGE) + dt.timedelta(hours=3, minutes=10)
        result = daemon.cli("status", "--json", now=at)
        self.assertEqual(result.returncode, 0, result.stderr)
        entry = next(job for job in json.loads(result.stdout)["jobs"] if job["job"] == JOB)
        self.assertEqual(entry["schemas"], [{"type": "visit", "since_slot": CHANGE,
                                             "age_seconds": 3 * 3600 + 600, "columns": len(CHANGED)}])
        result = daemon.cli("status", now=at)
        self.assertIn("schema age: visit 3h10m", result.stdout)

    # --- helpers ---------------------------------------------------------------

    def history(self):
        result = self.daemon.cli("schema", "--job", JOB, "--type", "visit", "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        answer = json.loads(result.stdout)
        self.assertEqual((answer["job"], answer["type"]), (JOB, "visit"))
        return answer["schemas"]

    def manifest(self, slot):
        with open(os.path.join(self.partition(JOB, "visit", slot), "_manifest.json"), encoding="utf-8") as f:
            return json.load(f)

    def schema_metrics(self, url):
        """The /metrics text once it has the schema counter, else None (for wait_for)."""
        text = self.scrape(url)
        return text if text and "gio_schema_changes_total" in text else None

    @staticmethod
    def sample(text, name):
        line = re.search(rf'^{name}{{gio_job="{JOB}",type="visit"}} (\S+)$', text, re.M)
        return float(line.group(1)) if line else None

    @staticmethod
    def read(path):
        try:
            with open(path, encoding="utf-8") as f:
                return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        except FileNotFoundError:
            return None


if __name__ == "__main__":
    unittest.main()
