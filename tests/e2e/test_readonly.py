"""Read-only commands (`status`, `gaps`, `verify`) on a state database and archive that
belong to someone else: run as root on files owned by `nobody`, and as `nobody` on
files it may read but whose folder it cannot write (the daemon's live -wal and -shm
included). Each answers in full with its exit status, and no byte of state.db, its -wal
or its -shm changes, nor does any file appear. A missing database is an error naming
its path, and is not created. Item 12's `status` line (the next ask) and `gaps`
listing lost slots and the slots of a removed job are checked here too.

Needs root (chown, and setpriv to run as nobody); skipped otherwise."""

import datetime as dt
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import unittest

from harness import TOKEN, UTC, E2ETestCase, binary, flow, hourly_job, slot_start

RETENTION = dt.timedelta(days=15)
READ_ONLY_COMMANDS = (("status",), ("status", "--json"), ("gaps",), ("gaps", "--json"), ("verify",))


def fingerprint(folder):
    """{relative path: sha256 of its bytes, or "dir"} of everything under `folder`, with
    each entry's owner and mode: what "changed nothing" compares."""
    found = {}
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(parent, name)
            info = os.lstat(path)
            if os.path.isdir(path):
                digest = "dir"
            else:
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            found[os.path.relpath(path, folder)] = (digest, info.st_uid, oct(info.st_mode))
    return found


def chown_tree(folder, uid, gid):
    for parent, dirs, files in os.walk(folder):
        os.chown(parent, uid, gid)
        for name in files:
            os.chown(os.path.join(parent, name), uid, gid)


def chmod_tree(folder, dir_mode, file_mode):
    for parent, dirs, files in os.walk(folder):
        os.chmod(parent, dir_mode)
        for name in files:
            os.chmod(os.path.join(parent, name), file_mode)


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv")
class ReadOnlyCommandsTest(E2ETestCase):
    def setUp(self):
        super().setUp()
        nobody = pwd.getpwnam("nobody")
        self.nobody = (nobody.pw_uid, nobody.pw_gid)
        # Let nobody reach the config, the token file and its working folder.
        os.chmod(self.base, 0o755)
        os.chmod(self.aux_dir, 0o755)
        self.token_file = os.path.join(self.aux_dir, "shop.token")
        with open(self.token_file, "w", encoding="utf-8") as f:
            f.write(TOKEN + "\n")
        # Private, as check-config wants it, and nobody's: root reads it anyway.
        os.chmod(self.token_file, 0o600)
        os.chown(self.token_file, *self.nobody)
        probe = subprocess.run(["setpriv", f"--reuid={self.nobody[0]}", f"--regid={self.nobody[1]}",
                                "--clear-groups", binary(), "version"], capture_output=True, timeout=30)
        if probe.returncode != 0:
            self.skipTest(f"nobody cannot run {binary()}: {probe.stderr!r}")

    def start(self, *args, **kwargs):
        server, daemon = super().start(*args, **kwargs)
        daemon.edit_config("token_env: GIO_TEST_TOKEN", f"token_file: {self.token_file}")
        return server, daemon

    def as_nobody(self, *args, now):
        """The CLI run by nobody (no supplementary groups), with the harness's clock."""
        daemon = self.daemon
        command = ["setpriv", f"--reuid={self.nobody[0]}", f"--regid={self.nobody[1]}", "--clear-groups",
                   daemon.binary, "-c", daemon.config, *args]
        return subprocess.run(command, cwd=self.aux_dir, env=daemon.env(now), capture_output=True,
                              text=True, timeout=60)

    def answers(self, run, now):
        """{command: (exit status, stdout)} of every read-only command; stderr must be empty."""
        got = {}
        for args in READ_ONLY_COMMANDS:
            result = run(*args, now=now)
            self.assertEqual(result.stderr, "", f"{args}: {result.stderr}")
            got[args] = (result.returncode, result.stdout)
        return got

    def assert_nothing_changed(self, before, what):
        self.assertEqual(fingerprint(self.run_dir), before, f"{what} changed the daemon's files")

    # --- root and nobody on files that are not theirs ----------------------------------

    def build_state(self):
        """Slots in every state a reader must show: done; waiting; failed, then lost once
        the vendor's 15 days have passed; and the failed and waiting slots of a job
        removed from the config. Returns (the clock to read at, the never-ready slot)."""
        jobs = [hourly_job(give_up_after="1h"), hourly_job("shop-old", give_up_after="1h", backfill="3h")]
        server, daemon = self.start(jobs=jobs)
        slots = self.expected()
        never = slots[-1]  # inside both jobs' backfill windows
        server.scenario({"slots": {never: {"status": "NOT_EXISTS"}}})
        now = server.now()
        self.assert_run_once(now=now)
        # Past give_up_after: failed, with the reason (run --once says so: exit 3).
        self.assert_run_once(now=now + dt.timedelta(hours=2), code=3)
        daemon.edit_config(f"  - {flow(jobs[1])}\n", "")
        # Past the vendor's retention: lost (shop-old's stays failed: it is not configured).
        later = slot_start(never) + RETENTION + dt.timedelta(minutes=1)
        self.assert_run_once(now=later, code=3)
        return later + dt.timedelta(minutes=1), never

    def test_root_and_nobody_read_another_users_files_and_change_nothing(self):
        read_at, never = self.build_state()
        # From here on the config names a systemd credential that this shell does not
        # have ($CREDENTIALS_DIRECTORY unset): read-only commands must not need it.
        self.daemon.edit_config(f"token_file: {self.token_file}", "token_credential: shop-token")
        db = os.path.join(self.run_dir, "state.db")
        self.assertFalse(os.path.exists(db + "-wal"), "run --once left its WAL")
        reference = self.answers(self.daemon.cli, read_at)

        # What the answers must hold: status counts, the next ask, and every gap.
        code, text = reference[("status", "--json")]
        self.assertEqual(code, 0)
        status = {job["job"]: job for job in json.loads(text)["jobs"]}
        self.assertEqual(list(status), ["shop-hourly"])
        self.assertEqual(status["shop-hourly"]["counts"]["lost"], 1, status)
        self.assertRegex(status["shop-hourly"]["next_action"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertIn("\n  next ask: " + status["shop-hourly"]["next_action"] + " (slot ",
                      reference[("status",)][1])
        code, text = reference[("gaps", "--json")]
        self.assertEqual(code, 2)
        gaps = json.loads(text)["gaps"]
        by_key = {(g["job"], g["slot"]): g for g in gaps}
        lost = by_key[("shop-hourly", never)]
        self.assertEqual((lost["state"], lost["in_config"], lost["seconds_left"]), ("lost", True, 0), lost)
        self.assertIn("retention", lost["last_error"])
        old = by_key[("shop-old", never)]
        self.assertEqual((old["state"], old["in_config"]), ("failed", False), old)
        self.assertIn("gave up after 1h", old["last_error"])
        self.assertTrue(any(g["job"] == "shop-old" and g["state"] == "waiting" for g in gaps), gaps)
        # The text lines say the same, one per gap.
        code, text = reference[("gaps",)]
        self.assertEqual((code, len(text.splitlines())), (2, len(gaps)), text)
        self.assertIn(f"shop-old {never} failed attempts=", text)
        self.assertIn("(job not in the config)", text)
        code, text = reference[("verify",)]
        self.assertEqual(code, 0, text)
        self.assertRegex(text, r"verify: [1-9]\d* done slot\(s\)")

        # --state filters, and the exit status follows what is listed.
        result = self.daemon.cli("gaps", "--json", "--state", "lost,failed", now=read_at)
        listed = json.loads(result.stdout)["gaps"]
        self.assertEqual(result.returncode, 2)
        self.assertEqual(listed, [g for g in gaps if g["state"] in ("lost", "failed")])
        self.assertIn(lost, listed)
        self.assertIn(old, listed)
        result = self.daemon.cli("gaps", "--state", "unplanned", now=read_at)
        self.assertEqual((result.returncode, result.stdout), (0, "no gaps in state unplanned\n"))
        result = self.daemon.cli("gaps", "--state", "done", now=read_at)
        self.assertEqual(result.returncode, 1)
        self.assertIn("--state", result.stderr)

        # The database and the archive now belong to nobody, in a folder only nobody may
        # enter; root reads them.
        chown_tree(self.run_dir, *self.nobody)
        os.chmod(self.run_dir, 0o700)
        before = fingerprint(self.run_dir)
        self.assertEqual(self.answers(self.daemon.cli, read_at), reference)
        self.assert_nothing_changed(before, "root's read-only commands")

        # nobody owns the files but may not write the folder: nothing beside state.db
        # can be made (no -wal, no -shm).
        os.chmod(self.run_dir, 0o500)
        self.assertEqual(self.answers(self.as_nobody, read_at), reference)
        self.assert_nothing_changed(before, "nobody's read-only commands")

        # check-config --no-secrets: root may write the folders; nobody may not, and is told.
        result = self.daemon.cli("check-config", "--no-secrets", now=read_at)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("secrets not checked", result.stdout + result.stderr)
        result = self.as_nobody("check-config", "--no-secrets", now=read_at)
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertIn("state_db", result.stderr)
        self.assert_nothing_changed(before, "check-config --no-secrets")

    def test_nobody_reads_a_live_wal_it_cannot_write(self):
        # The daemon (root) archives everything, then is killed: its -wal and -shm stay,
        # and most of what it wrote is in the -wal only.
        server, daemon = self.start()
        slots = self.expected()
        daemon.start()
        self.wait_done("shop-hourly", len(slots))
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait()
        db = os.path.join(self.run_dir, "state.db")
        for suffix in ("-wal", "-shm"):
            self.assertTrue(os.path.exists(db + suffix), f"no state.db{suffix} after the kill")
        self.assertGreater(os.path.getsize(db + "-wal"), 0)
        # nobody may read every file, write none, and create nothing in the folder.
        chmod_tree(self.run_dir, 0o755, 0o644)
        before = fingerprint(self.run_dir)
        now = server.now()

        answers = self.answers(self.as_nobody, now)
        self.assert_nothing_changed(before, "nobody's read-only commands")
        code, text = answers[("status", "--json")]
        self.assertEqual(code, 0)
        job = json.loads(text)["jobs"][0]
        # Only the WAL holds these rows: seeing them proves it was read.
        self.assertEqual(job["counts"]["done"], len(slots), job)
        self.assertEqual(job["newest_done"], slots[-1])
        self.assertEqual(answers[("gaps", "--json")], (0, '{"gaps":[]}\n'))
        self.assertEqual(answers[("gaps",)][0], 0)
        code, text = answers[("verify",)]
        self.assertEqual(code, 0, text)
        self.assertIn(f"verify: {len(slots)} done slot(s)", text)

    # --- a wrong path --------------------------------------------------------------------

    def test_a_missing_database_is_named_and_not_created(self):
        server, daemon = self.start()
        for state_db in ("missing/state.db", "state.db"):
            with open(daemon.config, encoding="utf-8") as f:
                current = re.search(r"state_db: \S+", f.read()).group(0)
            daemon.edit_config(current, f"state_db: {state_db}")
            path = os.path.join(self.run_dir, state_db)
            # The commands that queue work do not make one either: a new empty database
            # at a wrong path would take their rows where the daemon never looks.
            queueing = (("backfill", "--job", "shop-hourly", "--from", "2026-11-22T15", "--to",
                         "2026-11-22T15"),
                        ("backfill", "--job", "shop-hourly", "--from", "2026-11-22T15", "--to",
                         "2026-11-22T15", "--dry-run"),
                        ("retry", "--job", "shop-hourly", "--failed"),
                        ("retry", "--job", "shop-hourly", "--failed", "--dry-run"),
                        ("verify", "--repair"))
            for args in READ_ONLY_COMMANDS + queueing:
                result = daemon.cli(*args)
                self.assertEqual(result.returncode, 1, f"{args}: {result.stdout}{result.stderr}")
                self.assertEqual(result.stdout, "", args)
                self.assertIn(f"state database {path}: no such file", result.stderr, args)
            self.assertEqual(sorted(os.listdir(self.run_dir)), ["config.yaml"])

    # --- item 12: the next ask ---------------------------------------------------------------

    def test_status_names_the_next_ask_when_nothing_is_queued(self):
        server, daemon = self.start()
        now = dt.datetime(2026, 11, 22, 10, 10, tzinfo=UTC)  # the harness's NOW, to the second
        self.assert_run_once(now=now)
        job = json.loads(daemon.cli("status", "--json", now=now).stdout)["jobs"][0]
        self.assertEqual(sum(job["counts"][s] for s in ("pending", "waiting", "downloading")), 0, job)
        # 10:10Z is 18:10 in Beijing: the hour 17 (09:00-10:00Z) is ready at 10:40Z.
        self.assertEqual((job["next_action"], job["next_slot"]), ("2026-11-22T10:40:00Z", "2026-11-22T17"))
        text = daemon.cli("status", now=now).stdout
        self.assertIn("next ask: 2026-11-22T10:40:00Z (slot 2026-11-22T17, in 30m)", text)


if __name__ == "__main__":
    unittest.main()
