"""Packaging and service checks: the systemd unit, the Prometheus alert rules, the .deb.

Run from tests/packaging with GIO_SOURCE_DIR (the source tree), GIO_BUILD_DIR (a
configured build with gio-exporter and its man page built) and GIO_EXPORTER_BIN.
ctest runs each TestCase as its own entry (tests/CMakeLists.txt). The .deb test installs
the package on this machine and removes it again, so it needs root (CI runs as root).
"""

import fcntl
import functools
import gzip
import http.server
import os
import grp
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("GIO_SOURCE_DIR", Path(__file__).resolve().parents[2]))
EXPORTER_BIN = Path(os.environ.get("GIO_EXPORTER_BIN", SOURCE_DIR / "build" / "gio-exporter"))
BUILD_DIR = Path(os.environ.get("GIO_BUILD_DIR", EXPORTER_BIN.parent))
UNIT = SOURCE_DIR / "systemd" / "gio-exporter.service"
RULES = SOURCE_DIR / "config" / "prometheus-alerts.yml"
RULE_TESTS = SOURCE_DIR / "tests" / "packaging" / "prometheus-alerts.test.yml"
SYSUSERS = SOURCE_DIR / "systemd" / "gio-exporter.sysusers"
COMPLETION = SOURCE_DIR / "systemd" / "gio-exporter.bash-completion"
MAX_EXPOSURE = 2.0  # systemd-analyze security's "OK" ends here
PACKAGED_EXEC = "/usr/bin/gio-exporter"

# The metric names the daemon exposes (README, issue 5); the rules may use only these.
METRICS = {
    "gio_exporter_slots", "gio_exporter_slots_at_risk", "gio_exporter_next_loss_seconds",
    "gio_exporter_newest_archived_slot_timestamp_seconds", "gio_exporter_archived_files_total",
    "gio_exporter_archived_bytes_total", "gio_exporter_slot_failures_total",
    "gio_exporter_slots_lost_total", "gio_exporter_retries_total",
    "gio_exporter_api_requests_total", "gio_exporter_auth_refreshes_total",
    "gio_exporter_download_bytes_total", "gio_exporter_download_seconds_total",
    "gio_exporter_build_info", "gio_exporter_start_time_seconds",
    "gio_exporter_config_last_reload_successful",
    "gio_exporter_config_last_reload_success_timestamp_seconds",
}
METRICS_HEADER = SOURCE_DIR / "daemon" / "ops" / "exporter_metrics.hpp"


def run(args, timeout=120, **kwargs):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def verify_problems(unit_arg):
    """`systemd-analyze verify` lines about gio-exporter itself.

    Without a running systemd (containers) verify may also complain about other units
    on the machine; those lines are not this unit's problem. A failure with no line at
    all is reported as one.
    """
    result = run(["systemd-analyze", "verify", unit_arg])
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    own = [line for line in lines if "gio-exporter" in line]
    if result.returncode != 0 and not lines:
        own.append(f"systemd-analyze verify exited {result.returncode} without a message")
    return own


def exposure(unit_arg):
    """The overall exposure level `systemd-analyze security --offline=yes` gives."""
    result = run(["systemd-analyze", "security", "--offline=yes", unit_arg])
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for gio-exporter\.service: (\d+(?:\.\d+)?) (\S+)",
                      output)
    if not match:
        raise AssertionError(f"no overall exposure level in:\n{output}")
    return float(match.group(1)), match.group(2), output


def directives(unit_text):
    """Active (uncommented) Key=Value lines, each key with all its values."""
    found = {}
    for line in unit_text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


class UnitFileTest(unittest.TestCase):
    """systemd/gio-exporter.service: the settings the daemon relies on, verify, security."""

    def test_service_settings(self):
        text = UNIT.read_text()
        found = directives(text)
        expected = {
            "Type": "notify",
            "NotifyAccess": "main",
            "ExecReload": "/bin/kill -HUP $MAINPID",
            "Restart": "on-failure",
            "StateDirectory": "gio-exporter",
            "ConfigurationDirectory": "gio-exporter",
            # A static user and group (sysusers.d) instead of DynamicUser: the group is
            # the archive's readers (README "Add a reader").
            "User": "gio-exporter",
            "Group": "gio-exporter",
            "StateDirectoryMode": "0750",
            "ConditionPathExists": "/etc/gio-exporter/config.yaml",
            "WantedBy": "multi-user.target",
        }
        for key, value in expected.items():
            self.assertEqual(found.get(key), [value], key)
        self.assertNotIn("DynamicUser", found)
        self.assertRegex(found["WatchdogSec"][0], r"^\d+s$")
        self.assertEqual(found["ExecStart"],
                         [f"{PACKAGED_EXEC} --config /etc/gio-exporter/config.yaml run"])
        # Hooks run /bin/sh: exec must stay allowed, so no blanket ban on execve.
        self.assertIn("@system-service", found["SystemCallFilter"])
        for value in found["SystemCallFilter"]:
            self.assertNotRegex(value, r"execve|@process")
        self.assertEqual(found["RestrictAddressFamilies"], ["AF_INET AF_INET6 AF_UNIX"])
        # The credential example is there for the reader, commented out.
        self.assertRegex(text, r"(?m)^#LoadCredential=\S+:/etc/gio-exporter/\S+$")
        self.assertNotIn("LoadCredential", found)

    def test_verify_is_clean(self):
        # verify wants ExecStart to exist: a copy of the unit runs the build's binary.
        self.assertTrue(EXPORTER_BIN.is_file(), f"build gio-exporter first: {EXPORTER_BIN}")
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / "gio-exporter.service"
            text = UNIT.read_text()
            self.assertIn(f"ExecStart={PACKAGED_EXEC} ", text)
            copy.write_text(text.replace(f"ExecStart={PACKAGED_EXEC} ",
                                         f"ExecStart={EXPORTER_BIN.resolve()} "))
            self.assertEqual(verify_problems(copy), [])

    def test_verify_catches_a_broken_unit(self):
        # The check above can fail: a misspelt setting and a missing binary are reported.
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / "gio-exporter.service"
            copy.write_text(UNIT.read_text().replace("Restart=on-failure", "Restart=sometimes"))
            problems = verify_problems(copy)
            self.assertTrue(any("sometimes" in line for line in problems), problems)
            self.assertTrue(any("gio-exporter" in line and "executable" in line
                                for line in problems), problems)

    def test_security_exposure_at_most_2(self):
        level, rating, output = exposure(UNIT)
        self.assertLessEqual(level, MAX_EXPOSURE, output)
        self.assertEqual(rating, "OK", output)

    def test_security_check_sees_weakening(self):
        # Dropping the hardening must push the rating over the limit, or the check is blind.
        kept = [line for line in UNIT.read_text().splitlines()
                if not line.startswith(("CapabilityBoundingSet", "SystemCallFilter",
                                        "PrivateUsers", "ProtectProc", "ProtectSystem"))]
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / "gio-exporter.service"
            copy.write_text("\n".join(kept) + "\n")
            level, _, output = exposure(copy)
            self.assertGreater(level, MAX_EXPOSURE, output)


class SysusersTest(unittest.TestCase):
    """systemd/gio-exporter.sysusers: systemd-sysusers makes the user and its group."""

    def test_sysusers_makes_a_system_user_and_group(self):
        with tempfile.TemporaryDirectory() as root:
            os.mkdir(Path(root, "etc"))
            result = run(["systemd-sysusers", f"--root={root}", SYSUSERS.resolve()])
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            users = [line.split(":") for line in Path(root, "etc/passwd").read_text().splitlines()]
            groups = [line.split(":") for line in Path(root, "etc/group").read_text().splitlines()]
        user = [u for u in users if u[0] == "gio-exporter"]
        self.assertEqual(len(user), 1, users)
        _, _, uid, gid, _, home, shell = user[0]
        self.assertLess(int(uid), 1000)  # a system user
        self.assertEqual(home, "/var/lib/gio-exporter")
        self.assertTrue(shell.endswith("nologin"), shell)
        self.assertEqual([g[2] for g in groups if g[0] == "gio-exporter"], [gid])


def complete(script, words, path=None):
    """What the completion script offers for `words` (the last is the one being typed)."""
    env = dict(os.environ)
    if path:
        env["PATH"] = f"{path}:{env['PATH']}"
    program = (f'source "{script}" || exit 3; complete -p gio-exporter >/dev/null || exit 4; '
               'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _gio_exporter; '
               'printf "%s\\n" "${COMPREPLY[@]}"')
    result = run(["bash", "--norc", "-c", program, "bash", *words], env=env)
    if result.returncode != 0:
        raise AssertionError(f"bash exited {result.returncode}: {result.stdout}{result.stderr}")
    return [line for line in result.stdout.splitlines() if line]


class CompletionTest(unittest.TestCase):
    """systemd/gio-exporter.bash-completion against the built binary's help."""

    def setUp(self):
        self.assertTrue(EXPORTER_BIN.is_file(), f"build gio-exporter first: {EXPORTER_BIN}")
        self.bin_dir = EXPORTER_BIN.resolve().parent

    def test_completes_commands(self):
        self.assertEqual(complete(COMPLETION, ["gio-exporter", "st"], self.bin_dir), ["status"])
        everything = complete(COMPLETION, ["gio-exporter", ""], self.bin_dir)
        for command in ("run", "check-config", "status", "gaps", "backfill", "retry", "verify",
                        "fetch", "version"):
            self.assertIn(command, everything)
        # -c's value is not taken for the command.
        self.assertEqual(complete(COMPLETION, ["gio-exporter", "-c", "x.yaml", "ga"],
                                  self.bin_dir), ["gaps"])

    def test_completes_options_of_the_command(self):
        gaps = complete(COMPLETION, ["gio-exporter", "gaps", "--"], self.bin_dir)
        for option in ("--job", "--json", "--help", "--config"):
            self.assertIn(option, gaps)
        self.assertNotIn("--failed", gaps)  # retry's, not gaps'
        self.assertIn("--failed", complete(COMPLETION, ["gio-exporter", "retry", "--f"],
                                           self.bin_dir))
        self.assertEqual(complete(COMPLETION, ["gio-exporter", "fetch", "--verify", ""],
                                  self.bin_dir), ["gzip", "size"])
        self.assertIn("--config", complete(COMPLETION, ["gio-exporter", "--co"], self.bin_dir))

    def test_offers_nothing_for_an_unknown_program(self):
        # Without the binary on PATH there is no help to read: no words, no error.
        self.assertEqual(complete(COMPLETION, ["gio-exporter-missing", "st"]), [])


class AlertRulesTest(unittest.TestCase):
    """config/prometheus-alerts.yml: promtool's checks and unit tests."""

    def test_promtool_check_rules(self):
        result = run(["promtool", "check", "rules", RULES])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        match = re.search(r"SUCCESS: (\d+) rules found", result.stdout)
        self.assertIsNotNone(match, result.stdout)
        self.assertGreaterEqual(int(match.group(1)), 4)

    def test_every_alert_is_complete(self):
        text = RULES.read_text()
        blocks = re.split(r"(?m)^\s*- alert: ", text)[1:]
        names = [block.split("\n", 1)[0].strip() for block in blocks]
        for wanted in ("GioExporterDown", "GioExporterSlotAtRisk", "GioExporterNoRecentArchive",
                       "GioExporterRepeatedFailures", "GioExporterSlotLost",
                       "GioExporterSlotsFailed", "GioExporterReloadFailed"):
            self.assertIn(wanted, names)
        for name, block in zip(names, blocks):
            self.assertRegex(block, r"\n\s+for: \d+[smh]\n", name)
            self.assertRegex(block, r"\n\s+severity: (warning|critical)\n", name)
            self.assertRegex(block, r"\n\s+summary: ", name)
            self.assertRegex(block, r"\n\s+description: ", name)
            if "$labels.gio_job" in block:
                self.assertIn("gio-exporter gaps --job {{ $labels.gio_job }}", block, name)
        used = set(re.findall(r"\bgio_exporter_[a-z_]+", text))
        self.assertTrue(used)
        self.assertEqual(used - METRICS, set(), "metrics the daemon does not expose")
        # METRICS is the daemon's own list (ops/exporter_metrics.hpp names each family).
        declared = set(re.findall(r'"(gio_exporter_[a-z_]+)"', METRICS_HEADER.read_text()))
        self.assertEqual(declared, METRICS)

    def test_promtool_unit_tests_pass(self):
        result = run(["promtool", "test", "rules", RULE_TESTS])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("SUCCESS", result.stdout)

    def test_promtool_unit_tests_catch_a_changed_rule(self):
        # The same tests against rules whose hour-job threshold moved from 6 h to 8 h fail.
        rules = RULES.read_text()
        self.assertIn("> 6 * 3600", rules)
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "rules.yml").write_text(rules.replace("> 6 * 3600", "> 8 * 3600"))
            tests = RULE_TESTS.read_text().replace("../../config/prometheus-alerts.yml",
                                                   "rules.yml")
            Path(folder, "tests.yml").write_text(tests)
            result = run(["promtool", "test", "rules", "tests.yml"], cwd=folder)
            self.assertNotEqual(result.returncode, 0, result.stdout)
            self.assertIn("GioExporterNoRecentArchive", result.stdout + result.stderr)


    def test_promtool_unit_tests_catch_a_lost_slot_alert_on_increase_alone(self):
        # increase() alone misses slots counted lost before the first scrape (at start,
        # after an outage): the tests fail against such a rule.
        rules = RULES.read_text()
        clause = "\n          or (gio_exporter_slots_lost_total > 0 unless gio_exporter_slots_lost_total offset 1h)"
        self.assertIn(clause, rules)
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "rules.yml").write_text(rules.replace(clause, ""))
            tests = RULE_TESTS.read_text().replace("../../config/prometheus-alerts.yml",
                                                   "rules.yml")
            Path(folder, "tests.yml").write_text(tests)
            result = run(["promtool", "test", "rules", "tests.yml"], cwd=folder)
            self.assertNotEqual(result.returncode, 0, result.stdout)
            self.assertIn("GioExporterSlotLost", result.stdout + result.stderr)


def dpkg_status(package):
    result = run(["dpkg-query", "-W", "-f=${Status}", package])
    status = result.stdout.strip()
    return "not-installed" if result.returncode != 0 or status.endswith(" not-installed") else status


def runtime_packages(binary):
    """Debian packages of the shared libraries the binary needs (readelf + ldd + dpkg -S)."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        run(["readelf", "-d", binary]).stdout)
    resolved = dict(re.findall(r"^\s*(\S+) => (/\S+)", run(["ldd", binary]).stdout, re.M))
    packages = {}
    for soname in needed:
        path = Path(resolved[soname])
        owner = run(["dpkg", "-S", f"*/{path.parent.name}/{path.name}"])
        if owner.returncode != 0:
            raise AssertionError(f"no Debian package ships {path}: {owner.stderr}")
        packages[soname] = owner.stdout.split(":", 1)[0].strip()
    return packages


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    """Serves a folder without a log line per request."""

    def log_message(self, *args):
        pass


class DebPackageTest(unittest.TestCase):
    """The .deb builds with CPack, installs with dpkg -i, works, and dpkg -r removes it."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("installing the .deb needs root (dpkg -i); CI runs as root")
        if not (BUILD_DIR / "CPackConfig.cmake").is_file():
            self.fail(f"no CPackConfig.cmake in {BUILD_DIR}: configure the build first")
        # One package test at a time on this machine (several build folders share it).
        self.lock = open(os.path.join(tempfile.gettempdir(), "gio-exporter-packaging.lock"), "w")
        self.addCleanup(self.lock.close)
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        if not dpkg_status("gio-exporter").endswith(("not-installed", "config-files")):
            self.skipTest("gio-exporter is installed on this machine already; this test "
                          "installs and removes its own copy, so remove that one first "
                          "(dpkg --purge gio-exporter)")
        self.folder = tempfile.TemporaryDirectory()
        self.addCleanup(self.folder.cleanup)

    def build_deb(self):
        out = Path(self.folder.name)
        result = run(["cpack", "-G", "DEB", "--config", BUILD_DIR / "CPackConfig.cmake",
                      "-B", out], timeout=600, cwd=BUILD_DIR)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        version = re.search(r'set\(CPACK_PACKAGE_VERSION "([^"]+)"\)',
                            (BUILD_DIR / "CPackConfig.cmake").read_text()).group(1)
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        debs = sorted(p.name for p in out.glob("*.deb"))
        self.assertEqual(debs, [f"gio-exporter_{version}_{arch}.deb"])
        return out / debs[0], version

    def test_deb_builds_installs_runs_and_removes(self):
        deb, version = self.build_deb()
        self.check_lintian(deb)

        fields = run(["dpkg-deb", "--field", deb, "Package", "Version", "Depends",
                      "Recommends", "Maintainer"]).stdout
        self.assertIn("Package: gio-exporter", fields)
        maintainer = re.search(r"Maintainer: (.*)", fields).group(1)
        self.assertRegex(maintainer, r"^[^<>]+ <[^@<>\s]+@[^@<>\s]+\.[a-z]+>$")
        self.assertNotIn("localhost", maintainer)
        self.assertIn(f"Version: {version}", fields)
        depends = {re.split(r"[ (]", item.strip())[0]
                   for item in re.search(r"Depends: (.*)", fields).group(1).split(",")}
        for soname, package in runtime_packages(EXPORTER_BIN).items():
            # shlibs may name a virtual package the library's package provides
            # (libspdlog1.10 provides libspdlog1.10-fmt9).
            provides = run(["dpkg-query", "-W", "-f=${Provides}", package]).stdout
            names = {package} | {re.split(r"[ (]", item.strip())[0]
                                 for item in provides.split(",") if item.strip()}
            self.assertTrue(names & depends, f"{soname} comes from {package}: {sorted(depends)}")
        self.assertIn("ca-certificates", depends)
        # sinks run rclone, but a local archive does not need it: recommended, not required
        recommends = re.search(r"Recommends: (.*)", fields)
        self.assertIsNotNone(recommends, fields)
        self.assertIn("rclone", {re.split(r"[ (]", item.strip())[0]
                                 for item in recommends.group(1).split(",")})
        self.assertNotIn("rclone", depends)

        contents = run(["dpkg-deb", "--contents", deb]).stdout
        for path in ("./usr/bin/gio-exporter", "./usr/lib/systemd/system/gio-exporter.service",
                     "./usr/share/doc/gio-exporter/examples/config.yaml",
                     "./usr/share/doc/gio-exporter/examples/prometheus-alerts.yml",
                     "./usr/share/doc/gio-exporter/README.md",
                     "./usr/share/man/man1/gio-exporter.1.gz",
                     "./usr/share/man/man5/gio-exporter.yaml.5.gz",
                     "./usr/lib/sysusers.d/gio-exporter.conf",
                     "./usr/share/bash-completion/completions/gio-exporter",
                     "./usr/share/doc/gio-exporter/copyright",
                     "./usr/share/doc/gio-exporter/changelog.gz"):
            self.assertIn(path, contents)
        self.assertNotIn("./etc/", contents)  # no config shipped: nothing starts unconfigured
        control = run(["dpkg-deb", "--info", deb]).stdout
        for script in ("postinst", "prerm", "postrm"):
            self.assertRegex(control, rf"\b{script}\b")

        self.addCleanup(lambda: run(["dpkg", "--purge", "gio-exporter"]))
        installed = run(["dpkg", "-i", deb], timeout=300)
        self.assertEqual(installed.returncode, 0, installed.stdout + installed.stderr)
        self.assertEqual(dpkg_status("gio-exporter"), "install ok installed")
        files = [Path(p) for p in run(["dpkg", "-L", "gio-exporter"]).stdout.split()]
        unit = Path("/usr/lib/systemd/system/gio-exporter.service")
        self.assertIn(unit, files)

        # The installed unit starts the installed binary, verifies, and stays "OK".
        self.assertIn(f"ExecStart={PACKAGED_EXEC} --config", unit.read_text())
        self.assertEqual(verify_problems(unit), [])
        self.assertEqual(verify_problems("gio-exporter.service"), [])  # found by name
        level, _, output = exposure(unit)
        self.assertLessEqual(level, MAX_EXPOSURE, output)

        version_run = run([PACKAGED_EXEC, "version"])
        self.assertEqual(version_run.returncode, 0, version_run.stderr)
        self.assertIn(version, version_run.stdout)
        help_run = run([PACKAGED_EXEC, "--help"])
        self.assertEqual(help_run.returncode, 0)
        self.assertIn("LoadCredential", help_run.stdout)

        self.check_debian_docs(version)
        self.check_man_pages()
        self.check_installed_completion()
        self.check_a_reader_can_read_the_archive()

        removed = run(["dpkg", "-r", "gio-exporter"], timeout=300)
        self.assertEqual(removed.returncode, 0, removed.stdout + removed.stderr)
        self.assertNotEqual(dpkg_status("gio-exporter"), "install ok installed")
        left = [p for p in files if p.exists() and not p.is_dir()]
        self.assertEqual(left, [], "files left after dpkg -r")

    # What lintian may still say, and why it stays: the prerm disables the unit with
    # systemctl, because deb-systemd-helper only removes the links it made itself and
    # the README has the admin enable the service with systemctl.
    LINTIAN_ACCEPTED = {"maintainer-script-calls-systemctl [prerm:14]"}

    def check_lintian(self, deb):
        if shutil.which("lintian") is None:
            self.fail("lintian is not installed (scripts/setup.sh installs it)")
        result = run(["lintian", "--tag-display-limit", "0", deb], timeout=600)
        tags = {line.split(": ", 2)[2] for line in result.stdout.splitlines()
                if re.match(r"^[EW]: gio-exporter", line)}
        self.assertEqual(tags - self.LINTIAN_ACCEPTED, set(), result.stdout + result.stderr)

    def check_debian_docs(self, version):
        doc = Path("/usr/share/doc/gio-exporter")
        copyright_text = (doc / "copyright").read_text()
        self.assertTrue(copyright_text.startswith(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"))
        for field in ("Upstream-Name: gio-exporter", "Files: *", "Copyright: ", "License: "):
            self.assertIn(field, copyright_text)
        with gzip.open(doc / "changelog.gz", "rt") as changelog:
            top = changelog.readline()
        self.assertRegex(top, rf"^gio-exporter \({re.escape(version)}\) \S+; urgency=\w+$")

    def check_man_pages(self):
        # man5 exists and both pages point at each other.
        for page, other in (("/usr/share/man/man1/gio-exporter.1.gz", "gio-exporter.yaml"),
                            ("/usr/share/man/man5/gio-exporter.yaml.5.gz", "gio-exporter")):
            with gzip.open(page, "rt") as text:
                roff = text.read()
            self.assertRegex(roff, r'\.SH "?SEE ALSO"?', page)
            see_also = re.split(r'\.SH "?SEE ALSO"?', roff)[1]
            self.assertRegex(see_also, rf"\.BR {re.escape(other)} \([15]\)", page)

    def check_installed_completion(self):
        script = "/usr/share/bash-completion/completions/gio-exporter"
        self.assertEqual(complete(script, ["gio-exporter", "st"]), ["status"])
        self.assertIn("--json", complete(script, ["gio-exporter", "status", "--"]))

    def check_a_reader_can_read_the_archive(self):
        """The package's user writes an archive with the daemon's modes; a user who joins
        the gio-exporter group, and nothing else, can list and read it."""
        service = pwd.getpwnam("gio-exporter")  # made by the postinst
        self.assertLess(service.pw_uid, 1000)
        self.assertEqual(grp.getgrgid(service.pw_gid).gr_name, "gio-exporter")
        self.assertTrue(service.pw_shell.endswith("nologin"), service.pw_shell)

        # A root that others may enter, like /var/lib; the archive in it is the service's
        # (StateDirectoryMode=0750, owner gio-exporter).
        top = Path(tempfile.mkdtemp(prefix="gio-reader-"))
        self.addCleanup(shutil.rmtree, top, True)
        top.chmod(0o755)
        archive = top / "archive"
        archive.mkdir(mode=0o750)
        os.chown(archive, service.pw_uid, service.pw_gid)

        # The service writes a partition with the installed binary's download-and-publish
        # path, as its own user; umask 0027 makes the partition folders what the daemon's
        # archive_umask (default 0027) makes them.
        payload = b"event,time\nvisit,2026-11-22T03:00:00+08:00\n"
        served = top / "served"
        served.mkdir()
        (served / "visit-0.csv.gz").write_bytes(gzip.compress(payload, mtime=0))
        handler = functools.partial(QuietFiles, directory=served)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        partition = archive / "shop-hourly" / "visit" / "dt=2026-11-22" / "hour=03"
        url = f"http://127.0.0.1:{server.server_address[1]}/visit-0.csv.gz"
        as_service = ["setpriv", "--reuid=gio-exporter", "--regid=gio-exporter",
                      "--init-groups", "sh", "-c", 'umask 0027 && exec "$@"', "sh"]
        fetched = run(as_service + [PACKAGED_EXEC, "fetch", url, "--dir", partition])
        self.assertEqual(fetched.returncode, 0, fetched.stdout + fetched.stderr)
        archived = partition / "visit-0.csv.gz"
        info = archived.stat()
        self.assertEqual((info.st_uid, info.st_gid), (service.pw_uid, service.pw_gid))
        self.assertEqual(stat.S_IMODE(info.st_mode), 0o640)
        folder = archive
        for part in partition.relative_to(archive).parts:
            folder = folder / part
            self.assertEqual(stat.S_IMODE(folder.stat().st_mode), 0o750, folder)
            self.assertEqual(folder.stat().st_gid, service.pw_gid, folder)

        # A consumer account, first outside the group: it can read nothing.
        reader = "gio-reader-test"
        made = run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    reader])
        self.assertEqual(made.returncode, 0, made.stderr)
        self.addCleanup(run, ["userdel", reader])
        as_reader = ["setpriv", f"--reuid={reader}", f"--regid={reader}", "--init-groups"]
        self.assertNotEqual(run(as_reader + ["ls", archive]).returncode, 0)
        self.assertNotEqual(run(as_reader + ["cat", archived]).returncode, 0)

        # Joining the group is all it takes (README "Add a reader").
        joined = run(["usermod", "-aG", "gio-exporter", reader])
        self.assertEqual(joined.returncode, 0, joined.stderr)
        listed = run(as_reader + ["ls", "-R", archive])
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("visit-0.csv.gz", listed.stdout)
        read = subprocess.run(as_reader + ["cat", str(archived)], capture_output=True,
                              timeout=60)
        self.assertEqual(read.returncode, 0, read.stderr)
        self.assertEqual(gzip.decompress(read.stdout), payload)
        # Reading is all: the group may not write into the archive.
        wrote = run(as_reader + ["touch", partition / "intruder"])
        self.assertNotEqual(wrote.returncode, 0)


if __name__ == "__main__":
    unittest.main()
