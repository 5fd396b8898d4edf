"""The daemon's log as an operator reads it: every text line is logfmt (ts=, level=,
msg=, then the event's fields), JSON lines keep their types, one problem is one warning
(however often the slot is polled) and its end is said, a backlog never asked about is
one line per job, and work queued by other processes (retry, backfill) and reloads show
up in the daemon's own log."""

import datetime as dt
import json
import re
import shlex
import signal
import unittest

from harness import E2ETestCase, flow, hourly_job, parse_logfmt, parse_utc, slot_start, wait_for

JOB = "shop-hourly"
INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SLOT_NAME = re.compile(r"^\d{4}-\d\d-\d\d(T\d\d)?$")  # Beijing-time slot names
LEVELS = {"debug", "info", "warning", "error", "critical"}


class LogsTest(E2ETestCase):
    def assert_logfmt(self, text):
        """Every line parses as logfmt, starts ts= level= msg=, and every time in it says
        its zone. Returns the lines as dicts."""
        records = []
        for line in text.splitlines():
            try:
                pairs = parse_logfmt(line)
            except ValueError as error:
                self.fail(f"{error}{self.context()}")
            self.assertEqual([key for key, _ in pairs[:3]], ["ts", "level", "msg"], line)
            record = dict(pairs)
            self.assertEqual(len(record), len(pairs), f"a key twice: {line}")
            self.assertRegex(record["ts"], INSTANT, line)
            self.assertIn(record["level"], LEVELS, line)
            for key, value in pairs:
                if re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d", value):
                    self.assertTrue(INSTANT.match(value) or SLOT_NAME.match(value),
                                    f"{key}={value} names no zone: {line}")
            records.append(record)
        self.assertTrue(records)
        return records

    def test_text_lines_are_logfmt_and_json_lines_keep_their_types(self):
        server, daemon = self.start(jobs=[hourly_job(backfill="3h")])
        slots = self.expected()

        # JSON: one object per line, numbers as numbers.
        daemon.edit_config("log: {level: debug}", "log: {level: info, format: json}")
        result = daemon.cli("run", "--once")
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = [json.loads(line) for line in result.stderr.splitlines()]
        self.assertTrue(all(list(r)[:3] == ["ts", "level", "msg"] for r in lines), lines)
        self.assertTrue(all(INSTANT.match(r["ts"]) for r in lines), lines)
        done = [r for r in lines if r.get("event") == "slot_done"]
        self.assertEqual([r["slot"] for r in done], slots, lines)
        for record in done:
            for key in ("files", "bytes"):
                self.assertIs(type(record[key]), int, record)
            self.assertIsInstance(record["job"], str)
        catch_up = [r for r in lines if r.get("event") == "catch_up"]
        self.assertTrue(catch_up and all(type(r["slots"]) is int for r in catch_up), lines)

        # Text: a daemon's run, with a reload that names what it changed as key=value.
        daemon.edit_config("log: {level: info, format: json}", "log: {level: debug}")
        daemon.start()
        wait_for(lambda: "gio-exporter starting" in daemon.log_text(), 20, "the daemon to start")
        daemon.edit_config("poll_every: 1s", "poll_every: 2s")
        blog = hourly_job("blog-hourly", backfill="3h")
        with open(daemon.config, "a", encoding="utf-8") as f:
            f.write(f"  - {flow(blog)}\n")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.events("reloaded"), 20, "event=reloaded")
        reloaded = daemon.events("reloaded")[0]
        self.assertEqual((reloaded["jobs"], reloaded["added"], reloaded["removed"]),
                         ("2", "blog-hourly", "-"), reloaded)
        self.assertEqual(reloaded["changed"], "shop-hourly.poll_every", reloaded)
        self.wait_done("blog-hourly", len(self.expected(blog)))
        self.stop_daemon()

        records = self.assert_logfmt(daemon.log_text())
        done = [r for r in records if r.get("event") == "slot_done"]
        self.assertEqual(sorted(r["slot"] for r in done if r["job"] == "blog-hourly"),
                         self.expected(blog))
        self.assertTrue(all(r["level"] == "info" and int(r["bytes"]) > 0 for r in done))
        self.assertIn("debug", {r["level"] for r in records})  # plain lines too

    def test_a_slot_answering_error_is_one_warning_until_it_recovers(self):
        slot = "2026-11-22T15"
        server, daemon = self.start({"slots": {slot: {"status": "ERROR"}}})
        slots = self.expected()
        daemon.start()
        self.wait_done(JOB, len(slots) - 1)
        calls = server.stats()["api_calls"][f"hour/{slot}"]
        wait_for(lambda: server.stats()["api_calls"][f"hour/{slot}"] >= calls + 5, 30, "five more asks")

        retries = daemon.events("slot_retry", slot=slot)
        self.assertEqual(len(retries), 1, f"one warning, not one per poll: {retries}{self.context()}")
        retry = retries[0]
        self.assertEqual(retry["attempt"], "1")
        self.assertRegex(retry["next_try"], INSTANT)
        self.assertIn("ERROR", retry["reason"])
        line = next(l for l in daemon.log_text().splitlines() if "event=slot_retry" in l)
        self.assertEqual(dict(parse_logfmt(line))["level"], "warning")

        server.scenario({"slots": {slot: {"status": "FINISHED"}}})
        self.wait_done(JOB, len(slots), timeout=30)
        self.stop_daemon()
        self.assertEqual(len(daemon.events("slot_retry", slot=slot)), 1, self.context())
        recovered = daemon.events("slot_recovered", slot=slot)
        self.assertEqual(len(recovered), 1, self.context())
        self.assertEqual(recovered[0]["state"], "done")
        self.assertIn("ERROR", recovered[0]["previous"])
        self.assertGreaterEqual(int(recovered[0]["repeated"]), 5)
        self.assertGreater(int(recovered[0]["attempt"]), 6)
        self.assert_logfmt(daemon.log_text())

    def test_a_failed_slot_names_the_command_that_re_runs_it(self):
        slot = "2026-11-22T15"
        server, daemon = self.start({"slots": {slot: {"status": "ERROR"}}},
                                    jobs=[hourly_job(give_up_after="1s")])
        slots = self.expected()
        daemon.start()
        wait_for(lambda: daemon.events("slot_failed", slot=slot), 30, "event=slot_failed")
        failed = daemon.events("slot_failed", slot=slot)[0]
        # The daemon's own verdict, apart from the vendor's words ("it will be re-run").
        self.assertTrue(failed["reason"].startswith("gave up after 1s"), failed)
        self.assertNotIn("re-run", failed["reason"])
        self.assertIn("it will be re-run", failed["last_answer"])
        line = next(l for l in daemon.log_text().splitlines() if "event=slot_failed" in l)
        self.assertIn("not asked again until re-queued", dict(parse_logfmt(line))["msg"])

        # The command it names does re-run it, and the daemon's log says it picked that up.
        server.scenario({"slots": {slot: {"status": "FINISHED"}}})
        command = shlex.split(failed["requeue"])
        self.assertEqual(command[:2], ["gio-exporter", "retry"])
        result = daemon.cli(*command[1:])
        self.assertEqual(result.returncode, 0, result.stderr)
        wait_for(lambda: daemon.events("queue_changed"), 20, "event=queue_changed")
        self.wait_done(JOB, len(slots))
        self.stop_daemon()
        changed = daemon.events("queue_changed")[0]
        self.assertEqual((changed["slots"], changed["jobs"], changed["first"], changed["last"]),
                         ("1", JOB, slot, slot), changed)
        self.assertEqual(len(daemon.events("slot_done", slot=slot)), 1)
        self.assert_logfmt(daemon.log_text())

    def test_first_start_with_a_long_backfill_summarises_slots_never_asked(self):
        server, daemon = self.start({"slot_defaults": {"status": "RUNNING"}},
                                    jobs=[hourly_job(backfill="15d")])
        now = server.now()
        slots = self.expected()
        daemon.start()
        wait_for(lambda: daemon.events("slots_at_risk_unasked"), 30, "the at-risk summary")
        self.stop_daemon()

        summary = daemon.events("slots_at_risk_unasked")
        self.assertEqual(len(summary), 1, self.context())
        summary = summary[0]
        retention = dt.timedelta(days=15)
        at_risk = [s for s in slots if now < slot_start(s) + retention <= now + dt.timedelta(hours=72)]
        self.assertGreater(len(at_risk), 60)
        self.assertEqual((summary["job"], summary["slots"], summary["first"], summary["last"]),
                         (JOB, str(len(at_risk)), at_risk[0], at_risk[-1]), summary)
        self.assertEqual(parse_utc(summary["lost_at"]), slot_start(at_risk[0]) + retention)
        self.assertRegex(summary["left"], r"^\d+h$")
        self.assertEqual(summary["reason"], "not asked yet")
        self.assertEqual(daemon.events("slot_at_risk"), [], "no line per slot")
        for lost in daemon.events("slot_lost"):
            self.assertTrue(lost["reason"] and not lost["reason"].endswith("last: "), lost)
        self.assert_logfmt(daemon.log_text())


if __name__ == "__main__":
    unittest.main()
