"""One daemon per archive: a second `run` or `run --once` on the same config refuses."""

import subprocess
import unittest

from harness import E2ETestCase


class SingleInstanceTest(E2ETestCase):
    def test_second_daemon_refuses_to_run(self):
        server, daemon = self.start({"rows": 400, "slot_defaults": {"slow_bytes_per_second": 40000}})
        slots = self.expected()

        daemon.start()
        self.wait_done("shop-hourly", 1, timeout=30)
        self.assertTrue(daemon.running())

        for args in (("run", "--once"), ("run",)):
            try:
                second = daemon.cli(*args, timeout=20)
            except subprocess.TimeoutExpired:
                self.fail(f"a second `{' '.join(args)}` did not exit within 20s{self.context()}")
            output = second.stdout + second.stderr
            self.assertEqual(second.returncode, 1, f"second `{' '.join(args)}`:\n{output}")
            self.assertIn("another gio-exporter is running", output)
            self.assertTrue(daemon.running(), "the first daemon stopped")

        self.stop_daemon()
        self.assert_nothing_partial("shop-hourly", slots)


if __name__ == "__main__":
    unittest.main()
