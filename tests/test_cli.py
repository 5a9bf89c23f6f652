"""The CLI: inspect, verify, head, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from exashard.cli import main
from exashard.shards import ShardWriter


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    with ShardWriter(str(root), name="c", max_samples=3) as w:
        for i in range(7):
            w.write({"__key__": f"k/{i}", "txt": f"caption {i}", "bin": bytes([0, 1, 2]) * i, "json": '{"a": 1}'})
    return str(root)


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_help_lists_commands():
    res = subprocess.run([sys.executable, "-m", "exashard.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for cmd in ("inspect", "verify", "head"):
        assert cmd in res.stdout


def test_inspect_text_and_json(dataset):
    res = run("inspect", dataset)
    assert res.exit_code == 0
    assert "shards    3" in res.output and "samples   7" in res.output
    info = json.loads(run("inspect", dataset, "--json").output)
    assert info["version"] == 1 and info["samples"] == 7 and len(info["shard_rows"]) == 3
    assert info["bytes"] == sum(os.path.getsize(os.path.join(dataset, r["path"])) for r in info["shard_rows"])


def test_head(dataset):
    res = run("head", dataset, "-n", "2")
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[0] == "k/0" and "'caption 0'" in res.output
    assert "k/1" in lines and "k/2" not in lines
    assert "<3 bytes binary>" in res.output


def test_versions(dataset):
    with ShardWriter(dataset, name="d") as w:
        w.write({"__key__": "new", "txt": "x"})
    assert json.loads(run("inspect", dataset, "--json").output)["samples"] == 8
    assert json.loads(run("inspect", dataset, "--json", "--version", "1").output)["samples"] == 7
    res = run("inspect", dataset, "--version", "9")
    assert res.exit_code == 2 and "version 9 does not exist" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["inspect", "/nonexistent/ds"], "not an exashard dataset"),
        (["verify", "/nonexistent/ds"], "not an exashard dataset"),
        (["head", "/nonexistent/ds"], "not an exashard dataset"),
        (["inspect", "nosuchproto://x"], "no usable filesystem"),
        (["inspect", "x", "--storage-options", "{bad"], "not valid JSON"),
        (["head", "x", "-n", "-1"], "-1"),
        (["inspect"], "Missing argument"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message):
    res = subprocess.run([sys.executable, "-m", "exashard.cli", *args], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_debug_shows_traceback():
    res = subprocess.run(
        [sys.executable, "-m", "exashard.cli", "--debug", "inspect", "/nonexistent/ds"], capture_output=True, text=True
    )
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_redact_stdin():
    text = "write to jane.doe@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111\n"
    res = subprocess.run([sys.executable, "-m", "exashard.cli", "redact"], input=text, capture_output=True, text=True)
    assert res.returncode == 0
    assert "jane.doe" not in res.stdout and "<EMAIL_ADDRESS>" in res.stdout and "<CREDIT_CARD>" in res.stdout


def test_redact_with_policy_field():
    policy = os.path.join(os.path.dirname(__file__), "..", "examples", "policy.toml")
    doc = '{"user_id": 7, "caption": "mail a@b.example.com", "location": {"lat": 1}, "camera": {"serial": "x"}}'
    res = subprocess.run([sys.executable, "-m", "exashard.cli", "redact", "--policy", policy, "--field", "json"],
                         input=doc, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"user_id", "caption", "camera"} and out["camera"] == {}
    assert len(out["user_id"]) == 32 and "<EMAIL_ADDRESS>" in out["caption"]
    assert "entity.EMAIL_ADDRESS" in res.stderr


def test_bench_command(dataset):
    res = run("bench", dataset)
    assert res.exit_code == 0, res.output
    assert "read 7 samples" in res.output and "efficiency" in res.output
    from exashard.shards.benchcore import bench_read

    r = bench_read(dataset, seconds=5)
    assert r["samples"] == 7 and r["shards_read"] == 3 and r["raw_MB_per_s"] > 0 and r["efficiency"] > 0
