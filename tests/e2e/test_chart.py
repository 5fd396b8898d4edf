"""Chart jobs (seed 000) and the other analyses as configuration: the asynchronous
"doing" answer, chart.json byte-exact, chart.csv, and one partition per chart id."""

import csv
import datetime as dt
import io
import json
import os
import unittest
import urllib.parse
import urllib.request

from harness import MARKERS, E2ETestCase, partition_rel, sha256_file, slot_start

INTERVALS_MS = {"1h": 3_600_000, "1d": 86_400_000, "7d": 604_800_000, "30d": 2_592_000_000}


def chart_job(name="shop-charts", **overrides):
    job = {"name": name, "project": "shop", "kind": "chart", "charts": ["YoX28w7R"],
           "granularity": "hour", "interval": "1h", "ready_after": "40m", "poll_every": "1s",
           "give_up_after": "24h", "backfill": "3h"}
    job.update(overrides)
    return job


def slot_range_ms(slot):
    """[start, end] unix ms of a slot: Beijing boundaries, end = the last millisecond."""
    start = slot_start(slot)
    length = 3_600_000 if "T" in slot else 86_400_000
    first = int(start.timestamp() * 1000)
    return first, first + length - 1


def csv_from_json(body):
    """chart.csv as Python's csv module writes it from the document: RFC 4180 quoting,
    CRLF, numbers as written in the JSON, null empty."""
    doc = json.loads(body, parse_int=str, parse_float=str)
    out = io.StringIO(newline="")
    writer = csv.writer(out)  # excel dialect: ',', '"' doubled, QUOTE_MINIMAL, \r\n
    writer.writerow([column["name"] for column in doc["meta"]])
    for row in doc["data"]:
        writer.writerow([{True: "true", False: "false"}.get(cell, cell) if isinstance(cell, bool) else cell
                         for cell in row])
    return out.getvalue().encode("utf-8")


class ChartTest(E2ETestCase):
    def served(self, resource, chart_id, slot, interval):
        start, end = slot_range_ms(slot)
        query = urllib.parse.urlencode({"resource": resource, "id": chart_id, "start": start, "end": end,
                                        "interval": INTERVALS_MS[interval]})
        with urllib.request.urlopen(f"{self.server.base}/_control/chart?{query}", timeout=30) as answer:
            return answer.read()

    def assert_chart_archived(self, job, slot, resource="charts"):
        for chart_id in job["charts"]:
            path = os.path.join(self.daemon.archive, partition_rel(job["name"], chart_id, slot))
            where = f"{job['name']} {chart_id} {slot}"
            self.assertTrue(os.path.isdir(path), f"missing partition {where}{self.context()}")
            self.assertEqual(sorted(os.listdir(path)), sorted(["chart.json", "chart.csv", *MARKERS]), where)
            self.assertEqual(os.path.getsize(os.path.join(path, "_SUCCESS")), 0)

            want = self.served(resource, chart_id, slot, job["interval"])
            with open(os.path.join(path, "chart.json"), "rb") as f:
                got = f.read()
            self.assertEqual(got, want, f"chart.json of {where} is not the served bytes")
            doc = json.loads(got)
            self.assertEqual(doc["meta"][0]["name"], "目标用户")
            self.assertIn('"目标用户"', got.decode("utf-8"))  # not \\u-escaped
            self.assertEqual((doc["startTime"], doc["endTime"]), slot_range_ms(slot))

            with open(os.path.join(path, "chart.csv"), "rb") as f:
                self.assertEqual(f.read(), csv_from_json(want), f"chart.csv of {where}")

            with open(os.path.join(path, "_manifest.json"), encoding="utf-8") as f:
                manifest = json.load(f)
            self.assertEqual((manifest["job"], manifest["data_type"], manifest["slot"]),
                             (job["name"], chart_id, slot))
            listed = {entry["name"]: (entry["bytes"], entry["sha256"]) for entry in manifest["files"]}
            # chart.csv's rows are the document's; chart.json is not a table.
            rows = {entry["name"]: entry.get("rows") for entry in manifest["files"]}
            self.assertEqual(rows, {"chart.json": None, "chart.csv": len(doc["data"])}, where)
            self.assertEqual(next(entry["columns"] for entry in manifest["files"] if entry["name"] == "chart.csv"),
                             [column["name"] for column in doc["meta"]], where)
            self.assertIsNone(manifest["rows"])
            self.assertIn("chart.csv", manifest["rows_note"])
            on_disk = {name: (os.path.getsize(os.path.join(path, name)), sha256_file(os.path.join(path, name)))
                       for name in ("chart.json", "chart.csv")}
            self.assertEqual(listed, on_disk, f"_manifest.json of {where}")

    def test_chart_job_polls_doing_then_archives_json_and_csv(self):
        job = chart_job(charts=["YoX28w7R", "bigNum1", "table_2"], backfill="4h")
        server, daemon = self.start({"charts": {"YoX28w7R": {"doing_polls": 3},
                                                "bigNum1": {"type": "bignumber"},
                                                "table_2": {"type": "table"}}},
                                    jobs=[job])
        slots = self.expected(job)
        self.assertEqual(len(slots), 2)

        daemon.start()
        self.wait_done(job["name"], len(slots), timeout=60)
        self.stop_daemon()

        stats = server.stats()
        for slot in slots:
            self.assert_chart_archived(job, slot)
            start, end = slot_range_ms(slot)
            # Asked until no longer "doing"; a finished chart is never asked again.
            self.assertEqual(stats["chart_calls"][f"charts/YoX28w7R/{start}-{end}"], 4)
            self.assertEqual(stats["chart_calls"][f"charts/bigNum1/{start}-{end}"], 1)
        for request in stats["chart_requests"]:
            self.assertEqual(request["query"]["interval"], "3600000")
        with open(os.path.join(self.daemon.archive, partition_rel(job["name"], "bigNum1", slots[0]),
                               "chart.json"), encoding="utf-8") as f:
            self.assertEqual(len(json.load(f)["aggregator"]["values"]), 2)
        code, gaps = daemon.gaps(job=job["name"])
        self.assertEqual((code, gaps["gaps"]), (0, []))

    def test_chart_at_the_row_cap_is_a_warning_in_gaps(self):
        # The vendor cuts a chart at 200,000 rows: a chart that comes back with exactly
        # that many is archived, but `gaps` lists it (and exits 2) and the log says so.
        job = chart_job(charts=["capped1", "small1"], backfill="3h")
        server, daemon = self.start({"charts": {"capped1": {"rows": 200_000}, "small1": {"rows": 3}}},
                                    jobs=[job])
        slots = self.expected(job)
        self.assertEqual(len(slots), 1)
        self.assert_run_once()
        self.assert_chart_archived(job, slots[0])

        code, gaps = daemon.gaps(job=job["name"])
        self.assertEqual(code, 2)
        self.assertEqual(gaps["gaps"], [])
        self.assertEqual(gaps["capped_charts"], [{"job": job["name"], "slot": slots[0], "chart": "capped1",
                                                  "rows": 200_000, "cap": 200_000}])
        text = daemon.cli("gaps", "--job", job["name"])
        self.assertEqual(text.returncode, 2)
        self.assertIn(f"{job['name']} {slots[0]} chart_capped chart=capped1 rows=200000", text.stdout)
        self.assertNotIn("small1", text.stdout)
        events = daemon.events("chart_row_cap")
        self.assertEqual(len(events), 1, events)
        self.assertEqual((events[0]["chart"], events[0]["rows"]), ("capped1", "200000"))
        # Asking only for some states lists slots, not the warning.
        only = daemon.cli("gaps", "--json", "--job", job["name"], "--state", "failed")
        self.assertEqual((only.returncode, json.loads(only.stdout)), (0, {"gaps": []}))

    def test_analyses_through_config_alone(self):
        funnel = chart_job("shop-funnel", resource="funnels", charts=["fUn1"], granularity="day",
                           interval="1d", ready_after="6h", backfill="2d", conversion_window="7d")
        retention = chart_job("shop-retention", resource="retentions", charts=["rEt1"], granularity="day",
                              interval="7d", ready_after="6h", backfill="2d", range="30")
        server, daemon = self.start(jobs=[funnel, retention])
        self.assertEqual(self.expected(funnel), ["2026-11-21"])

        self.assert_run_once()
        self.assert_chart_archived(funnel, "2026-11-21", resource="funnels")
        self.assert_chart_archived(retention, "2026-11-21", resource="retentions")
        start, end = slot_range_ms("2026-11-21")
        seen = {request["resource"]: request["query"] for request in server.stats()["chart_requests"]}
        self.assertEqual(seen["funnels"], {"interval": "86400000", "startTime": str(start),
                                           "endTime": str(end), "conversionWindow": "7"})
        self.assertEqual(seen["retentions"], {"interval": "604800000", "startTime": str(start),
                                              "endTime": str(end), "range": "30"})

    def test_interrupted_slot_does_not_fetch_a_finished_chart_again(self):
        job = chart_job(charts=["done1", "slow2"])
        server, daemon = self.start({"charts": {"slow2": {"doing_polls": 1}}}, jobs=[job])
        slots = self.expected(job)
        self.assertEqual(len(slots), 1)
        slot = slots[0]
        start, end = slot_range_ms(slot)

        self.assert_run_once()  # done1 finished, slow2 still doing: the slot waits
        self.assertEqual(daemon.job_status(job["name"])["counts"].get("waiting"), 1)
        self.assertTrue(os.path.exists(os.path.join(
            daemon.archive, partition_rel(job["name"], "done1", slot), "_SUCCESS")))

        # The next pass after poll_every (the daemon's clock moved on, not the test's).
        self.assert_run_once(now=server.now() + dt.timedelta(seconds=5))
        self.assert_chart_archived(job, slot)
        calls = server.stats()["chart_calls"]
        self.assertEqual(calls[f"charts/done1/{start}-{end}"], 1)
        self.assertEqual(calls[f"charts/slow2/{start}-{end}"], 2)
        self.assertEqual(daemon.job_status(job["name"])["counts"].get("done"), 1)


if __name__ == "__main__":
    unittest.main()
