"""The README names exactly the binaries' flags: every flag rwexport_server and rwexport define
(rwexport_server --helpfull, flags of our own source files; rwexport --help) appears in README.md as --NAME, and every --NAME
README.md mentions is a flag of one of them, of Abseil's flag parser, of a script under scripts/,
or of another tool the README shows a command line of (listed below with where)."""

import os
import re
import subprocess
import unittest

ROOT = os.path.join(os.environ["TEST_SRCDIR"], "rwexport")

# Flags of other programs that README.md shows in their command lines.
OTHER_TOOLS = {
    "out": "k6 run --out json=...",
    "web": "prometheus --web.enable-remote-write-receiver",
    "enable": "prometheus --enable-feature=native-histograms",
    "now": "systemctl enable --now",
    "output_base": "bazel --output_base=...",
    "workspace_status_command": "bazel's --workspace_status_command",
    "plugin": "protoc --plugin=...",
    "python_out": "protoc --python_out=...",
    "grpc_python_out": "protoc --grpc_python_out=...",
    "name": "the --flagfile format, one --name=value per line",
}
# Abseil's own flags (absl/flags/parse.cc, usage): the binaries accept them.
ABSEIL = {"flagfile", "fromenv", "tryfromenv", "undefok", "help", "helpfull", "helpshort",
          "helppackage", "version", "only_check_args"}


def server_flags(path):
    """The flags our own source files define, from rwexport_server --helpfull (Abseil's usage:
    one "Flags from FILE:" heading per source file, then "    --NAME (...)" lines)."""
    out = subprocess.run([path, "--helpfull"], capture_output=True, text=True, timeout=30)
    flags, ours = set(), False
    for line in (out.stdout + out.stderr).splitlines():
        header = re.match(r"^  Flags from (\S+):$", line)
        if header:
            ours = "absl/" not in header.group(1)
            continue
        flag = re.match(r"^    --([a-z][a-z0-9_]*) ", line)
        if flag and ours:
            flags.add(flag.group(1))
    return flags


def cli_flags(path):
    """The flags of rwexport, from its --help: a "Flags:" section of "  --NAME=DEFAULT" lines."""
    out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    flags_section = text[text.index("\nFlags:\n"):]
    return set(re.findall(r"(?m)^  --([a-z][a-z0-9_]*)=", flags_section))


def readme_flags():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return set(re.findall(r"(?<![A-Za-z0-9_-])--([a-z][a-z0-9_]*)", f.read()))


def script_text():
    text = []
    for dirpath, _, files in os.walk(os.path.join(ROOT, "scripts")):
        for name in files:
            with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                text.append(f.read())
    return "\n".join(text)


class ReadmeFlagsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = server_flags(os.path.join(ROOT, "server/rwexport_server"))
        cls.cli = cli_flags(os.path.join(ROOT, "client/rwexport"))
        cls.readme = readme_flags()

    def test_the_binaries_define_flags(self):
        # The parse above found the flags: a known one of each binary.
        self.assertIn("data_dir", self.server)
        self.assertIn("listen", self.server)
        self.assertIn("resume_timeout", self.cli)
        self.assertIn("export_id", self.cli)
        self.assertGreater(len(self.server), 20)
        self.assertGreater(len(self.cli), 20)

    def test_every_server_flag_is_in_the_readme(self):
        self.assertEqual(sorted(self.server - self.readme), [])

    def test_every_cli_flag_is_in_the_readme(self):
        self.assertEqual(sorted(self.cli - self.readme), [])

    def test_every_flag_the_readme_names_exists(self):
        scripts = script_text()
        unknown = []
        for flag in sorted(self.readme - self.server - self.cli - ABSEIL - set(OTHER_TOOLS)):
            # A script's flag: its parser matches --NAME (or --NAME=).
            if not re.search(r"--" + re.escape(flag) + r"(?![a-z0-9_])", scripts):
                unknown.append(flag)
        self.assertEqual(unknown, [], "README names flags nothing defines")


if __name__ == "__main__":
    unittest.main()
