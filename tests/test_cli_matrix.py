"""Bad input to every command: one line on stderr naming what is wrong and where, exit 2,
no traceback unless --debug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from exashard.cli import main
from exashard.privacy.keys import LocalKeyring
from exashard.shards import ShardWriter


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("matrix")
    ds = tmp / "ds"
    with ShardWriter(str(ds)) as w:  # encrypted with the session keyring ($EXASHARD_KEYRING)
        w.write({"__key__": "a", "txt": b"hello"})
    other = tmp / "other-keyring.json"
    LocalKeyring.create(str(other))
    (tmp / "bad-policy.toml").write_text('version = 1\n[fields]\ntxt = "shred"\n')
    (tmp / "bad-pipe.toml").write_text('sources = ["in"]\noutput = "out"\n[cluster]\nworkers = "many"\n')
    (tmp / "pipe-bad-src.toml").write_text(f'sources = ["nosuch://x/y"]\noutput = "{tmp / "o"}"\n')
    (tmp / "ids.txt").write_text("u1\n")
    (tmp / "raw").mkdir()
    (tmp / "raw" / "a.txt").write_text("hi")
    return {"tmp": str(tmp), "ds": str(ds), "other": str(other)}


CASES = [
    # (args, words the one-line error must contain)
    (["ingest"], ["Missing argument"]),
    (["ingest", "{tmp}/raw"], ["--out"]),
    (["ingest", "nosuch://bucket/x", "--out", "{tmp}/o1"], ["nosuch"]),
    (["ingest", "{tmp}/does-not-exist", "--out", "{tmp}/o2"], ["does-not-exist"]),
    (["ingest", "{tmp}/raw", "--out", "{tmp}/o3", "--policy", "{tmp}/bad-policy.toml"], ["bad-policy.toml:3", "txt"]),
    (["ingest", "{tmp}/raw", "--out", "{tmp}/o4", "--policy", "{tmp}/no-policy.toml"], ["no-policy.toml"]),
    (["ingest", "{tmp}/raw", "--out", "{tmp}/o5", "--shard-size", "huge"], ["--shard-size", "huge"]),
    (["ingest", "{tmp}/raw", "--out", "{tmp}/o6", "--keyring", "{tmp}/no-keyring.json"], ["no-keyring.json"]),
    (["ingest", "{tmp}/raw", "--out", "{tmp}/o7", "--kms", "vault://k"], ["kms"]),
    (["ingest", "{tmp}/raw", "--out", "{tmp}/o8", "--storage-options", "{{not json"], ["--storage-options", "JSON"]),
    (["ingest", "{tmp}/raw", "--out", "{tmp}/o9", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], ["--workers", "--scheduler"]),
    (["inspect"], ["Missing argument", "DATASET"]),
    (["inspect", "{tmp}/nope"], ["nope", "not an exashard dataset"]),
    (["inspect", "nosuch://x/y"], ["nosuch"]),
    (["inspect", "{ds}", "--version", "9"], ["version 9"]),
    (["verify", "{tmp}/nope"], ["nope"]),
    (["verify", "{ds}", "--keyring", "{other}"], ["keyring"]),
    (["head", "{ds}", "-n", "-1"], ["-n"]),
    (["head", "{ds}", "--keyring", "{other}"], ["keyring"]),
    (["head", "{ds}", "--keyring", "{tmp}/no-keyring.json"], ["no-keyring.json"]),
    (["bench", "{tmp}/nope"], ["nope"]),
    (["bench", "{ds}", "--seconds", "-1"], ["--seconds"]),
    (["redact", "--policy", "{tmp}/bad-policy.toml"], ["bad-policy.toml"]),
    (["keys", "new", "--keyring", "{other}"], ["already exists"]),
    (["keys", "rotate", "{tmp}/nope"], ["nope"]),
    (["keys", "shred", "{ds}", "--shard", "no-such-shard"], ["no-such-shard"]),
    (["keys", "export", "--out", "{other}"], ["already exists"]),
    (["keys", "frobnicate"], ["No such command"]),
    (["run"], ["Missing argument"]),
    (["run", "{tmp}/no-pipe.toml"], ["no-pipe.toml"]),
    (["run", "{tmp}/bad-pipe.toml"], ["bad-pipe.toml:4", "cluster.workers"]),
    (["run", "{tmp}/pipe-bad-src.toml"], ["nosuch"]),
    (["forget", "{ds}"], ["--ids"]),
    (["forget", "{ds}", "--ids", "{tmp}/no-ids.txt"], ["no-ids.txt"]),
    (["forget", "{tmp}/nope", "--ids", "{tmp}/ids.txt"], ["nope"]),
    (["vacuum", "{tmp}/nope"], ["nope"]),
    (["vacuum", "{ds}", "--grace", "later"], ["--grace", "later"]),
    (["vacuum", "{ds}", "--keep", "0"], ["--keep"]),
    (["nosuchcommand"], ["No such command"]),
]


@pytest.mark.parametrize("args,words", CASES, ids=[" ".join(a[:3]) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2(env, args, words):
    argv = [a.format(**env) for a in args]
    res = CliRunner().invoke(main, argv)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2, (res.exit_code, res.stderr, res.stdout)
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for w in words:
        assert w.format(**env).lower() in lines[0].lower(), (w, lines[0])


def test_debug_shows_the_traceback(env):
    res = subprocess.run([sys.executable, "-m", "exashard.cli", "--debug", "inspect", str(Path(env["tmp"]) / "nope")],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "Traceback" in res.stderr and "NotFoundError" in res.stderr
