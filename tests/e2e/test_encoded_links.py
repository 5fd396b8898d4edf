"""Links whose path holds percent-encoded bytes (`..%2F`, `%2E%2E`, `%3F`, UTF-8) are
requested exactly as given, on the first request and after a redirect, absolute or
relative: the fake server (exact_paths) serves each file only at the byte-exact encoded
path of its link, as an object store looks up a signed key."""

import unittest

from harness import E2ETestCase

# Raw link names: each decodes (or normalises) to another path than the one signed.
NAMES = {
    "visit": ["a..%2Fb.csv.gz", "..%2F..%2Fup.csv.gz"],
    "page": ["%2E%2E%2Fdots%3Fq.csv.gz"],
    "action": ["%E4%B8%AD%20%E6%96%87.csv.gz"],
}


class EncodedLinksTest(E2ETestCase):
    def test_encoded_paths_are_requested_byte_exact(self):
        direct, absolute, relative = "2026-11-22T13", "2026-11-22T14", "2026-11-22T15"
        knobs = {"exact_paths": True, "link_names": NAMES}
        server, daemon = self.start({"slots": {
            direct: dict(knobs),
            absolute: dict(knobs, redirect=True),
            relative: dict(knobs, redirect=True, redirect_relative=True),
        }})
        slots = self.expected()
        self.assertTrue({direct, absolute, relative} <= set(slots), slots)

        self.assert_run_once()
        stats = server.stats()
        # Not one request for another path than the link's: nothing decoded, nothing
        # normalised, on the first request or after either kind of redirect.
        self.assertEqual(stats.get("downloads_not_found", {}), {}, self.context())
        self.assertEqual(stats["downloads_refused"], {}, self.context())
        for slot in (direct, absolute, relative):
            files = sum(len(entries) for entries in self.truth("shop-hourly", slot).values())
            self.assertEqual(len(self.downloads_of(stats["downloads_completed"], [slot])), files, slot)
        self.assert_archived("shop-hourly", slots)
        self.assert_no_strays({"shop-hourly": slots})


if __name__ == "__main__":
    unittest.main()
