"""check-config: problems are reported as FILE:LINE:COL and exit 1."""

import os
import re
import unittest

from harness import E2ETestCase

VALID = """\
state_db: state.db
archive_dir: archive
http: {api_base: "http://127.0.0.1:9", timeout: 5s}
limits: {parallel_downloads: 4}
metrics: {listen: ""}
projects:
  - name: shop
    ai: 2a1b4018cd954ec2bcc69da5138bdb96
    project_uid: nxog09md
    auth: {token_env: GIO_TEST_TOKEN}
jobs:
  - name: shop-hourly
    project: shop
    kind: raw
    granularity: hour
    data_types: all
    ready_after: 40m
    poll_every: 1s
    give_up_after: 24h
    backfill: 6h
    link_expire: 60m
"""


class CheckConfigTest(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.start()

    def check(self, text):
        path = os.path.join(self.run_dir, "broken.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        result = self.daemon.cli("check-config", config=path)
        output = result.stdout + result.stderr
        places = [(int(line), int(col)) for line, col in re.findall(r"broken\.yaml:(\d+):(\d+): ", output)]
        return result.returncode, places, output

    def test_valid_config(self):
        code, places, output = self.check(VALID)
        self.assertEqual((code, places), (0, []), output)
        self.assertTrue(output.strip(), "no summary line")

    def test_unknown_key(self):
        code, places, output = self.check(VALID + "    colour: blue\n")
        self.assertEqual(code, 1, output)
        self.assertIn((22, 5), places, output)

    def test_bad_duration(self):
        code, places, output = self.check(VALID.replace("poll_every: 1s", "poll_every: soon"))
        self.assertEqual(code, 1, output)
        self.assertIn((18, 17), places, output)

    def test_unknown_project(self):
        code, places, output = self.check(VALID.replace("project: shop", "project: nope"))
        self.assertEqual(code, 1, output)
        self.assertIn(13, [line for line, _ in places], output)

    def test_yaml_syntax_error(self):
        code, places, output = self.check(VALID.replace("{parallel_downloads: 4}", "{parallel_downloads: 4"))
        self.assertEqual(code, 1, output)
        self.assertTrue(places, output)

    def test_yaml_errors_in_plain_words_and_typos_get_a_suggestion(self):
        # An unclosed '{' is shown where it opens (line 4), not where yaml-cpp gave up.
        code, places, output = self.check(VALID.replace("{parallel_downloads: 4}", "{parallel_downloads: 4"))
        self.assertEqual((code, places), (1, [(4, 9)]), output)
        self.assertIn("a map opened with '{' here is not closed: add the missing '}'", output)
        self.assertNotIn("end of map flow not found", output)
        # An unclosed quote is named, rather than read on into the next keys.
        code, places, output = self.check(VALID.replace("kind: raw", 'kind: "raw'))
        self.assertEqual((code, places), (1, [(14, 11)]), output)
        self.assertIn("unclosed quote", output)
        self.assertNotIn("unknown kind", output)
        code, places, output = self.check(
            VALID.replace("poll_every: 1s", "poll_evry: 1s").replace("data_types: all", "data_types: [pageview]")
        )
        self.assertEqual(code, 1, output)
        self.assertEqual(places, [(16, 18), (18, 5)], output)
        self.assertIn("unknown data type 'pageview' (did you mean 'page'?", output)
        self.assertIn("unknown key 'poll_evry' in a job (did you mean 'poll_every'?", output)


if __name__ == "__main__":
    unittest.main()
