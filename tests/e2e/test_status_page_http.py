"""The status page over HTTP (issue 17): `/` server-rendered with every job and its strict
headers, /page.js and /page.css from memory, /api/slots and its filters, 400 and 404,
HEAD, and no secret (token, signed OAuth code, link signatures) on the page or in the JSON even when a
slot's error came from a signed link. The page in a real browser: test_status_page.py."""

import json
import signal
import unittest
import urllib.error
import urllib.request

from harness import TOKEN, E2ETestCase, hourly_job, wait_for

POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# Signed-code auth for the no-secret test (the fake server's key matches it).
CLIENT_ID = "page-client-id"
PRIVATE_KEY = "page-private-key-5e1d"
# A slot whose downloads fail: its error names the download (without its signature).
BROKEN = "2026-11-22T16"


def get(url, method="GET"):
    """(status, headers, body text) of `url`, also for 4xx answers."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


class StatusPageHttpTest(E2ETestCase):
    def start_daemon(self, scenario=None, signed=False):
        jobs = [hourly_job(backfill="4h"),
                hourly_job("shop-daily", granularity="day", backfill="2d", ready_after="3h")]
        if signed:  # signed-code auth: no token accepted, only the fake server's codes
            scenario = dict(scenario or {}, private_key=PRIVATE_KEY, client_id=CLIENT_ID, token="no-token-here")
        server, daemon = self.start(scenario, jobs=jobs)
        if signed:
            self.use_signed_codes(daemon, CLIENT_ID, PRIVATE_KEY)
        self.base_url = self.enable_metrics().rsplit("/", 1)[0]
        daemon.start()
        wait_for(lambda: self.scrape(self.base_url + "/healthz"), 30, "the listener")
        return server, daemon

    def slots(self, query=""):
        status, headers, body = get(self.base_url + "/api/slots" + query)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(headers["Cache-Control"], "no-store")
        return json.loads(body)

    def test_page_assets_and_headers(self):
        self.start_daemon()
        status, headers, page = get(self.base_url + "/")
        self.assertEqual(status, 200, page)
        self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8")
        self.assertEqual(headers["Content-Security-Policy"], POLICY)
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertEqual(headers["Referrer-Policy"], "no-referrer")
        self.assertEqual(headers["Cache-Control"], "no-store")
        # Server-rendered: every job and its cells are in the first answer; nothing inline.
        for job in ("shop-hourly", "shop-daily"):
            self.assertIn(f'<section class="job" data-job="{job}">', page)
            self.assertIn(f"<h2>{job}</h2>", page)
            self.assertIn(f'class="cell" data-job="{job}"', page)
        self.assertIn('<main id="jobs">', page)
        self.assertIn('<aside id="details"', page)
        self.assertIn('id="daemon">version ', page)
        self.assertNotIn("<script>", page)
        self.assertNotIn("style=", page)
        self.assertNotIn("@JOBS@", page)
        for path, kind in (("/page.js", "text/javascript; charset=utf-8"),
                           ("/page.css", "text/css; charset=utf-8")):
            status, headers, body = get(self.base_url + path)
            self.assertEqual((status, headers["Content-Type"]), (200, kind), path)
            self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
            self.assertGreater(len(body), 1000, path)
            head_status, head_headers, head_body = get(self.base_url + path, "HEAD")
            self.assertEqual((head_status, head_body), (200, ""))
            self.assertEqual(head_headers["Content-Length"], str(len(body.encode())))
        self.assertIn("/api/slots", get(self.base_url + "/page.js")[2])
        head_status, head_headers, head_body = get(self.base_url + "/", "HEAD")
        self.assertEqual((head_status, head_body), (200, ""))
        self.assertEqual(head_headers["Content-Security-Policy"], POLICY)
        self.assertEqual(get(self.base_url + "/nope")[0], 404)
        # The metrics and health answers are unchanged.
        self.assertEqual(get(self.base_url + "/metrics")[0], 200)
        self.assertEqual(get(self.base_url + "/healthz")[0], 200)

    def test_api_slots_shape_filters_and_errors(self):
        server, daemon = self.start_daemon()
        self.wait_done("shop-hourly", 2)
        answer = self.slots()
        self.assertEqual([job["job"] for job in answer["jobs"]], ["shop-hourly", "shop-daily"])
        facts = answer["daemon"]
        self.assertEqual(set(facts), {"version", "started_at", "uptime_seconds", "last_reload"})
        self.assertIsNone(facts["last_reload"])
        self.assertGreaterEqual(facts["uptime_seconds"], 0)
        hourly = answer["jobs"][0]
        self.assertEqual(hourly["granularity"], "hour")
        for day in hourly["days"]:
            self.assertEqual(len(day["cells"]), 24, day["date"])
        self.assertGreaterEqual(hourly["counts"]["done"], 2)

        only = self.slots("?job=shop-daily")
        self.assertEqual([job["job"] for job in only["jobs"]], ["shop-daily"])
        one_day = self.slots("?job=shop-hourly&from=2026-11-21&to=2026-11-21")
        self.assertEqual([day["date"] for day in one_day["jobs"][0]["days"]], ["2026-11-21"])
        two = self.slots("?from=2026-11-21&to=2026-11-22")
        self.assertEqual([day["date"] for day in two["jobs"][0]["days"]],
                         ["2026-11-21", "2026-11-22"])

        for query, status in (("?job=nope", 404), ("?from=yesterday", 400),
                              ("?from=2026-11-22&to=2026-11-01", 400), ("?color=red", 400),
                              ("?job=a&job=b", 400)):
            got, headers, body = get(self.base_url + "/api/slots" + query)
            self.assertEqual(got, status, f"{query}: {body}")
            self.assertEqual(headers["Content-Type"], "application/json", query)
            self.assertIn("error", json.loads(body), query)
        self.assertIn("from", json.loads(get(self.base_url + "/api/slots?from=yesterday")[2])["error"])

        head_status, head_headers, head_body = get(self.base_url + "/api/slots?job=shop-daily", "HEAD")
        self.assertEqual((head_status, head_body), (200, ""))
        self.assertGreater(int(head_headers["Content-Length"]), 100)

        # A reload that applies the config is the header's "last reload" at once (the
        # cached answers are dropped with the old config).
        wait_for(lambda: daemon.catches(signal.SIGHUP), 10, "the SIGHUP handler")
        daemon.process.send_signal(signal.SIGHUP)
        reloaded = wait_for(lambda: self.slots()["daemon"]["last_reload"], 10, "last_reload")
        self.assertGreaterEqual(reloaded, facts["started_at"])
        self.assertIn(f"last reload {reloaded}", get(self.base_url + "/")[2])

    def test_no_secret_on_the_page_or_in_the_json(self):
        # Every link is signed; the broken slot's downloads keep failing, so its error names
        # a download, and links expire once, so fresh signatures are in play too. The
        # account signs its OAuth code, so that code is a secret in play as well.
        server, daemon = self.start_daemon({"slot_defaults": {"expired_links_polls": 1},
                                            "slots": {BROKEN: {"download_5xx": 1000}}}, signed=True)

        def failed_with_error():
            cells = [cell for day in self.slots("?job=shop-hourly")["jobs"][0]["days"]
                     for cell in day["cells"] if cell["slot"] == BROKEN]
            return cells[0] if cells and cells[0]["state"] != "unplanned" and cells[0]["last_error"] else None
        broken = wait_for(failed_with_error, 60, f"an error for {BROKEN}")
        self.assertNotEqual(broken["state"], "done")
        # The error names the download it came from: the link's path, never its query.
        self.assertIn("/download/", broken["last_error"])
        self.assertIn("answered HTTP", broken["last_error"])
        signs = server.request("/_control/signs")["signs"]
        self.assertTrue(signs)
        code = self.cached_auth_code()
        self.assertTrue(code, "the daemon cached no signed code: the test would check nothing")
        texts = {"/": get(self.base_url + "/")[2], "/api/slots": get(self.base_url + "/api/slots")[2]}
        self.assertIn(BROKEN, texts["/"])
        for name, text in texts.items():
            self.assertNotIn(TOKEN, text, name)
            self.assertNotIn(code, text, name)
            self.assertNotIn(PRIVATE_KEY, text, name)
            self.assertNotIn("sign=", text, name)
            for sign in signs:
                self.assertNotIn(sign, text, name)


if __name__ == "__main__":
    unittest.main()
