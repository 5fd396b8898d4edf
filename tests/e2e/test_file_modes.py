"""Safe files, end to end: the daemon's archive files are 0640 and its folders 0750 by
default, or what `archive_umask` says, whatever the umask it was started with; the
state database and its -wal and -shm files are 0600."""

import os
import stat
import unittest

from harness import E2ETestCase


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


class FileModesTest(E2ETestCase):
    def modes_under(self, root):
        """{relative path: mode} of every file and folder below root (root included)."""
        found = {".": mode(root)}
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                found[os.path.relpath(path, root)] = mode(path)
        return found

    def run_with_umask(self, process_umask, archive_umask=None):
        server, daemon = self.start()
        if archive_umask is not None:
            with open(daemon.config, "a", encoding="utf-8") as f:
                f.write(f'archive_umask: "{archive_umask}"\n')
        previous = os.umask(process_umask)  # inherited by the daemon
        try:
            self.assert_run_once()
        finally:
            os.umask(previous)
        self.assert_archived("shop-hourly", self.expected())
        return daemon

    def assert_modes(self, daemon, file_mode, folder_mode):
        found = self.modes_under(daemon.archive)
        files = {p: m for p, m in found.items() if not stat.S_ISDIR(os.lstat(os.path.join(daemon.archive, p)).st_mode)}
        folders = {p: m for p, m in found.items() if p not in files}
        self.assertTrue(any(p.endswith(".csv.gz") for p in files), found)
        self.assertTrue(any(p.endswith("_SUCCESS") for p in files), found)
        self.assertTrue(any(p.endswith("_manifest.json") for p in files), found)
        self.assertIn(".staging", folders)
        self.assertEqual({p: oct(m) for p, m in files.items() if m != file_mode}, {})
        self.assertEqual({p: oct(m) for p, m in folders.items() if m != folder_mode}, {})

    def test_archive_files_are_0640_and_folders_0750_whatever_the_process_umask(self):
        # umask 0: what the daemon asks for is all there is.
        daemon = self.run_with_umask(0o000)
        self.assert_modes(daemon, 0o640, 0o750)

    def test_a_narrow_process_umask_does_not_narrow_the_archive(self):
        daemon = self.run_with_umask(0o077)
        self.assert_modes(daemon, 0o640, 0o750)

    def test_archive_umask_sets_the_modes(self):
        daemon = self.run_with_umask(0o022, archive_umask="0077")
        self.assert_modes(daemon, 0o600, 0o700)

    def test_the_state_database_and_its_wal_and_shm_are_0600(self):
        server, daemon = self.start()
        previous = os.umask(0o000)
        try:
            daemon.start()
        finally:
            os.umask(previous)
        # While it runs, the -wal and -shm files exist next to the database.
        self.wait_done("shop-hourly", 1)
        db = os.path.join(daemon.run_dir, "state.db")
        for path in (db, db + "-wal", db + "-shm"):
            self.assertTrue(os.path.exists(path), path)
            self.assertEqual(oct(mode(path)), oct(0o600), path)
        self.stop_daemon()
        self.assertEqual(oct(mode(db)), oct(0o600))


if __name__ == "__main__":
    unittest.main()
