"""The README's commands run as written (install step aside: this venv is installed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from exashard.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _quickstart() -> list[str]:
    block = re.search(r"## Quickstart.*?```bash\n(.*?)```", README, re.S)
    assert block, "README has no Quickstart bash block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_quickstart_main_job_runs(tmp_path):
    """Command 1 after its install step: ingest the examples with the embedded defaults
    (LocalCluster, a local keyring created on first use), then head shows redacted samples."""
    first = _quickstart()[0]
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    job = first.split(".venv/bin/pip install -e . && ", 1)[1]
    out = tmp_path / "demo"
    job = job.replace(".venv/bin/", str(Path(sys.executable).parent) + "/").replace("/tmp/exashard-demo", str(out))
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "EXASHARD_KEYRING"}
    env["HOME"] = str(home)
    res = subprocess.run(["bash", "-c", job], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert (home / ".config" / "exashard" / "keyring.json").exists()  # created by ingest, on first use
    assert "<EMAIL_ADDRESS>" in res.stdout or "<PHONE_NUMBER>" in res.stdout or "<CREDIT_CARD>" in res.stdout
    assert "jane.doe@example.com" not in res.stdout and "ExampleCam" not in res.stdout


def test_quickstart_test_command_is_what_ci_runs():
    lines = _quickstart()
    assert lines[1] == "bash .ci/run"
    said = re.search(r"then runs: (.*?)\)", README).group(1)
    ci = (ROOT / ".ci" / "run").read_text()
    assert said in ci


def test_readme_cli_list_matches_the_commands():
    block = re.search(r"## Command line\n\n```\n(.*?)```", README, re.S).group(1)
    listed = {line.split()[1] for line in block.splitlines() if line.startswith("exashard ")}
    helped = CliRunner().invoke(main, ["--help"]).output
    commands = set(re.findall(r"^  (\w+)", helped.split("Commands:")[1], re.M))
    assert listed == commands
    for doc in ("FORMAT.md", "SECURITY.md", "PRIVACY.md", "OPERATIONS.md", "BENCHMARKS.md"):
        assert f"docs/{doc}" in README or doc in README, doc
