"""The command line itself: --version and -V, a --help per command that names its
options, and usage errors that name the bad option in one line (exit 1) instead of the
whole usage text; -c works before or after the command."""

import subprocess
import unittest

from harness import E2ETestCase, binary

# Each command and options its --help must name.
COMMAND_OPTIONS = {
    "run": ["--once"],
    "check-config": [],
    "status": ["--json"],
    "gaps": ["--job", "--state", "--json"],
    "schema": ["--job", "--type", "--json"],
    "backfill": ["--job", "--from", "--to", "--force", "--dry-run"],
    "retry": ["--job", "--slot", "--failed", "--dry-run"],
    "verify": ["--job", "--from", "--to", "--mode", "--repair"],
    "fetch": ["URL", "--dir", "--verify", "--inflate", "--parallel"],
    "version": [],
}


def cli(*args):
    return subprocess.run([binary(), *args], capture_output=True, text=True, timeout=30)


class CliTest(E2ETestCase):
    def test_version_flags_match_the_version_command(self):
        version = cli("version")
        self.assertEqual(version.returncode, 0, version.stderr)
        self.assertTrue(version.stdout.startswith("gio-exporter "), version.stdout)
        for flag in ("--version", "-V"):
            result = cli(flag)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(result.stdout, version.stdout, flag)
        # After a command too.
        self.assertEqual(cli("status", "--version").stdout, version.stdout)

    def test_every_command_has_its_own_help(self):
        top = cli("--help")
        self.assertEqual(top.returncode, 0, top.stderr)
        for command, options in COMMAND_OPTIONS.items():
            self.assertIn(f"\n  {command}", top.stdout)
            result = cli(command, "--help")
            self.assertEqual(result.returncode, 0, f"{command}: {result.stderr}")
            self.assertIn(f"gio-exporter {command}", result.stdout)
            for option in options:
                self.assertIn(option, result.stdout, f"{command} --help")
            # Its own options, not the top-level text.
            self.assertNotIn("exit status:", result.stdout, command)

    def test_a_bad_option_is_named_in_one_line(self):
        cases = [
            (("status", "--bogus"), "--bogus"),
            (("backfill", "--jobs", "x"), "--jobs"),  # named before the missing --job
            (("fetch", "--dir", "out", "--parallel", "0", "http://x/"), "--parallel"),
            (("fetch", "--dir", "out", "--verify", "crc", "http://x/"), "--verify"),
            (("verify", "--from", "2026-11-22T03"), "--from"),
            (("retry", "--job", "x"), "--slot"),
            (("frobnicate",), "frobnicate"),
        ]
        for args, needle in cases:
            result = cli(*args)
            self.assertEqual(result.returncode, 1, f"{args}: {result.stdout}{result.stderr}")
            lines = result.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, f"{args}: {result.stderr}")
            self.assertIn(needle, lines[0], args)
            self.assertNotIn("commands:", result.stderr, args)

    def test_config_before_or_after_the_command(self):
        server, daemon = self.start()
        for args in (("-c", daemon.config, "check-config"), ("check-config", "-c", daemon.config),
                     ("check-config", "--config", daemon.config)):
            result = subprocess.run([daemon.binary, *args], capture_output=True, text=True,
                                    timeout=30, env=daemon.env())
            self.assertEqual(result.returncode, 0, f"{args}: {result.stdout}{result.stderr}")
            self.assertIn(": OK: ", result.stdout)


if __name__ == "__main__":
    unittest.main()
