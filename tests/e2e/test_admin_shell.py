"""The operator's side, from an admin shell that lacks the service's secrets: the commands
that only read or queue (status, gaps, verify, backfill/retry --dry-run, check-config
--no-secrets) never load a token, so they work with token_credential and no
$CREDENTIALS_DIRECTORY, with token_env unset, and with a token file the shell cannot read,
and print exactly what they print with the secrets at hand (gaps keeps its exit 2).

check-config checks what running needs, as `nginx -t` does: folders that cannot be
created or written (/proc), a token file the service's user cannot read (--as-user), an
environment variable that is not set, each named with its key, path and reason; --json
gives the same verdict as JSON."""

import datetime as dt
import json
import os
import pwd
import re
import shutil
import subprocess
import unittest

from harness import TOKEN, E2ETestCase

TOKEN_LINE = "auth: {token_env: GIO_TEST_TOKEN}"
NOBODY = pwd.getpwnam("nobody")


def chown_tree(top, uid, gid):
    os.chown(top, uid, gid)
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


class AdminShellTest(E2ETestCase):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root: checks run as user nobody")
        self.start()
        self.assert_run_once()
        with open(self.daemon.config, encoding="utf-8") as f:
            self.config_text = f.read()
        self.assertIn(TOKEN_LINE, self.config_text)
        # One instant for every command, so that outputs compare byte for byte.
        self.now = self.server.now()
        self.later = self.now + dt.timedelta(hours=3)  # three slots nobody planned yet

    def write_config(self, auth=None, extra=""):
        """The harness's config with another auth; `extra` lines go first, in place of the
        harness's lines for the same keys."""
        text = self.config_text if auth is None else self.config_text.replace(TOKEN_LINE, f"auth: {auth}")
        replaced = {line.split(":")[0] + ":" for line in extra.splitlines()}
        kept = [line for line in text.splitlines(keepends=True)
                if not any(line.startswith(key) for key in replaced)]
        with open(self.daemon.config, "w", encoding="utf-8") as f:
            f.write(extra + "".join(kept))

    def admin_env(self):
        env = self.daemon.env()
        env.pop("GIO_TEST_TOKEN", None)
        env.pop("CREDENTIALS_DIRECTORY", None)
        return env

    def cli(self, *args, env=None, user=None, now=None):
        env = env or self.daemon.env()
        if now is not None:
            env["GIO_EXPORTER_NOW"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        return subprocess.run([self.daemon.binary, "-c", self.daemon.config, *args],
                              cwd=self.aux_dir, env=env, capture_output=True, text=True, timeout=60,
                              **ids)

    def read_only_commands(self):
        slot = self.expected()[0]
        return [
            (("status",), self.now, 0),
            (("status", "--json"), self.now, 0),
            (("gaps",), self.later, 2),
            (("gaps", "--json"), self.later, 2),
            (("gaps",), self.now, 0),
            (("verify",), self.now, 0),
            (("verify", "--repair"), self.now, 0),
            (("backfill", "--job", "shop-hourly", "--from", slot, "--to", slot, "--dry-run"), self.now, 0),
            (("retry", "--job", "shop-hourly", "--failed", "--dry-run"), self.now, 0),
        ]

    def baseline(self):
        """What each read-only command prints with the secret at hand."""
        self.write_config()
        out = {}
        for args, now, code in self.read_only_commands():
            result = self.cli(*args, now=now)
            self.assertEqual(result.returncode, code, f"{args}: {result.stdout}{result.stderr}")
            self.assertEqual(result.stderr, "", args)
            out[args, now] = result.stdout
        self.assertIn("shop-hourly", out[("status",), self.now])
        self.assertIn("shop-hourly", out[("gaps",), self.later])
        self.assertIn("unplanned", out[("gaps",), self.later])
        return out

    def assert_read_only_commands_work(self, want, why, env=None, user=None):
        for args, now, code in self.read_only_commands():
            result = self.cli(*args, env=env or self.admin_env(), now=now, user=user)
            self.assertEqual(result.returncode, code, f"{why}, {args}: {result.stdout}{result.stderr}")
            self.assertEqual(result.stdout, want[args, now], f"{why}, {args}")
            self.assertEqual(result.stderr, "", f"{why}, {args}")
            self.assertNotIn(TOKEN, result.stdout + result.stderr)
        check = self.cli("check-config", "--no-secrets", env=env or self.admin_env(), user=user)
        self.assertEqual(check.returncode, 0, f"{why}: {check.stdout}{check.stderr}")
        self.assertEqual(check.stderr, "", why)
        self.assertRegex(check.stdout, rf"^{re.escape(self.daemon.config)}: OK: 1 project, 1 job "
                                       r"\(shop-hourly: raw hour of shop\); state_db .*; "
                                       r"secrets not checked \(--no-secrets\)\n$")

    def test_read_only_commands_need_no_secrets(self):
        want = self.baseline()

        # The README's setup: a systemd credential, read from $CREDENTIALS_DIRECTORY,
        # which only the unit has.
        self.write_config("{token_credential: shop-token}")
        self.assert_read_only_commands_work(want, "token_credential")
        refused = self.cli("check-config", env=self.admin_env())
        self.assertEqual(refused.returncode, 1, refused.stdout)
        self.assertIn("credential 'shop-token' (the token): $CREDENTIALS_DIRECTORY is not set",
                      refused.stderr)

        # token_env, and a shell without the variable.
        self.write_config()
        self.assert_read_only_commands_work(want, "token_env unset")
        # `run` alone needs it: it calls the API.
        run = self.cli("run", "--once", env=self.admin_env())
        self.assertEqual(run.returncode, 1, run.stdout)
        self.assertIn("the environment variable GIO_TEST_TOKEN (the token) is not set", run.stderr)

        # A token file only its owner (root here, the service's user in real life) can
        # read, and a shell run by someone else (nobody, owning the state as a reader).
        token_file = os.path.join(self.base, "shop.token")
        with open(token_file, "w", encoding="utf-8") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        os.chmod(self.base, 0o755)
        chown_tree(self.run_dir, NOBODY.pw_uid, NOBODY.pw_gid)
        chown_tree(self.aux_dir, NOBODY.pw_uid, NOBODY.pw_gid)
        self.write_config(f"{{token_file: {token_file}}}")
        self.assert_read_only_commands_work(want, "unreadable token_file", user=NOBODY)
        refused = self.cli("check-config", env=self.admin_env(), user=NOBODY)
        self.assertEqual(refused.returncode, 1, refused.stdout)
        self.assertIn(f"cannot read the token file {token_file}: Permission denied", refused.stderr)

    def check(self, *args, env=None, user=None):
        """check-config as text and as --json: the same verdict both ways."""
        text = self.cli("check-config", *args, env=env, user=user)
        as_json = self.cli("check-config", *args, "--json", env=env, user=user)
        self.assertEqual(as_json.returncode, text.returncode, as_json.stdout + as_json.stderr)
        self.assertEqual(as_json.stderr, "")
        verdict = json.loads(as_json.stdout)
        self.assertEqual(verdict["ok"], text.returncode == 0)
        self.assertEqual(verdict["config"], self.daemon.config)
        lines = [line for line in text.stderr.splitlines() if ": warning: " not in line]
        as_text = [f"{p['file']}:{p['line']}:{p['column']}: {p['message']}" if p["line"] else
                   f"{p['file']}: {p['message']}" for p in verdict["problems"]]
        self.assertEqual(as_text, lines)
        if verdict["ok"]:
            self.assertEqual(text.stdout, f"{self.daemon.config}: OK: {verdict['summary']}\n")
        else:
            self.assertIsNone(verdict["summary"])
            self.assertEqual(text.stdout, "")
        self.assertEqual(verdict["secrets_checked"], "--no-secrets" not in args)
        return text.returncode, as_text, verdict

    def test_check_config_catches_what_cannot_run(self):
        code, problems, verdict = self.check()
        self.assertEqual((code, problems, verdict["warnings"]), (0, [], []))
        self.assertIn("1 project, 1 job", verdict["summary"])

        # Folders that cannot be made (/proc takes no new folder, even from root), and a
        # variable the environment does not have: all reported at once, each at its key.
        self.write_config(extra="state_db: /proc/nope/sub/state.db\narchive_dir: /proc/archive\n")
        code, problems, verdict = self.check(env=self.admin_env())
        config = self.daemon.config
        self.assertEqual(code, 1)
        self.assertEqual(len(problems), 3, problems)
        self.assertRegex(problems[0], rf"^{re.escape(config)}:1:11: state_db /proc/nope/sub/state.db: "
                                      r"cannot create /proc/nope/sub: cannot make a folder in /proc \(.+\)$")
        self.assertRegex(problems[1], rf"^{re.escape(config)}:2:14: archive_dir /proc/archive: "
                                      r"cannot create /proc/archive: cannot make a folder in /proc \(.+\)$")
        self.assertRegex(problems[2], rf"^{re.escape(config)}:\d+:\d+: the environment variable "
                                      r"GIO_TEST_TOKEN \(the token\) is not set$")
        self.assertFalse(os.path.exists("/proc/nope"))
        # --no-secrets: the folders still, not the variable.
        code, problems, verdict = self.check("--no-secrets", env=self.admin_env())
        self.assertEqual((code, len(problems)), (1, 2), problems)
        # A file where a folder should be.
        blocker = os.path.join(self.base, "blocker")
        open(blocker, "w").close()
        self.write_config(extra=f"archive_dir: {blocker}/archive\n")
        code, problems, _ = self.check()
        self.assertEqual(problems, [f"{config}:1:14: archive_dir {blocker}/archive: cannot create "
                                    f"{blocker}/archive: {blocker} is not a folder"])

    def test_check_config_as_the_services_user(self):
        # The service's own folder, owned by its user; a root-only token file.
        service = os.path.join(self.base, "service")
        os.makedirs(os.path.join(service, "state"))
        chown_tree(service, NOBODY.pw_uid, NOBODY.pw_gid)
        os.chmod(self.base, 0o755)
        root_only = os.path.join(self.base, "root.token")
        with open(root_only, "w", encoding="utf-8") as f:
            f.write(TOKEN + "\n")
        os.chmod(root_only, 0o600)
        locked = os.path.join(self.base, "locked")  # root's, 0755: nobody cannot make folders
        os.makedirs(locked)
        self.write_config(f"{{token_file: {root_only}}}",
                          extra=f"state_db: {locked}/state/state.db\narchive_dir: {service}/archive\n")
        config = self.daemon.config

        # As root everything is fine; as nobody the token and the state folder are not.
        self.assertEqual(self.check()[:2], (0, []))
        code, problems, verdict = self.check("--as-user", "nobody")
        self.assertEqual(code, 1)
        with open(config, encoding="utf-8") as f:
            lines = f.read().splitlines()
        line = next(i for i, text in enumerate(lines) if root_only in text)
        column = lines[line].index(root_only) + 1
        self.assertEqual(problems, [
            f"{config}:1:11: state_db {locked}/state/state.db: cannot create {locked}/state: "
            f"cannot make a folder in {locked} (Permission denied) (as user nobody)",
            f"{config}:{line + 1}:{column}: token_file {root_only}: cannot read it "
            "(Permission denied) (as user nobody)",
        ])
        self.assertEqual(verdict["as_user"], "nobody")
        self.assertEqual(os.listdir(service), ["state"], "a probe was left behind")
        self.assertEqual(os.listdir(locked), [])
        # --no-secrets: the folders only.
        self.assertEqual(self.check("--as-user", "nobody", "--no-secrets")[1], problems[:1])

        # Fixed the way the README says: the service's user owns its token and folder.
        os.chown(root_only, NOBODY.pw_uid, NOBODY.pw_gid)
        self.write_config(f"{{token_file: {root_only}}}",
                          extra=f"state_db: {service}/state/state.db\narchive_dir: {service}/archive\n")
        code, problems, verdict = self.check("--as-user", "nobody")
        self.assertEqual((code, problems), (0, []))
        self.assertTrue(verdict["summary"].endswith("; files checked as user nobody"), verdict["summary"])
        self.assertEqual(sorted(os.listdir(service)), ["state"], "a probe was left behind")
        self.assertEqual(os.listdir(os.path.join(service, "state")), [])

        unknown = self.cli("check-config", "--as-user", "no-such-user-here")
        self.assertEqual(unknown.returncode, 1)
        self.assertIn("--as-user: no user named no-such-user-here", unknown.stderr)
        not_root = self.cli("check-config", "--as-user", "root", user=NOBODY)
        self.assertEqual(not_root.returncode, 1)
        self.assertIn("--as-user root needs root", not_root.stderr)

    def test_help_names_the_options(self):
        result = subprocess.run([self.daemon.binary, "check-config", "--help"], capture_output=True,
                                text=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        for option in ("--no-secrets", "--as-user", "--json"):
            self.assertIn(option, result.stdout)


if __name__ == "__main__":
    unittest.main()
