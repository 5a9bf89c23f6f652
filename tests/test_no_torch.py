"""exashard works where torch cannot be imported (checked in a subprocess that blocks it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys, tempfile

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked for this test")
            return None

    sys.meta_path.insert(0, BlockTorch())
    import exashard
    from exashard.shards import ShardWriter, iter_dataset
    from exashard.cli import main

    root = tempfile.mkdtemp()
    with ShardWriter(root) as w:
        for i in range(10):
            w.write({"__key__": str(i), "txt": f"t{i}"})
    assert [s["txt"] for s in iter_dataset(root)] == [f"t{i}".encode() for i in range(10)]
    assert exashard.verify(root).ok
    assert "torch" not in sys.modules
    print("ok")
    """
)


def test_everything_without_torch():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


LOADER = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None  # import torch -> ImportError
    import exashard
    from exashard.shards import ShardWriter

    root = sys.argv[1]
    with ShardWriter(root, target_size=4000, frame_size=4096) as w:
        for i in range(300):
            w.write({"__key__": f"{i:04d}", "txt": f"t{i}" * 40})
    ds = exashard.ShardDataset(root, shuffle=True, seed=3)
    assert not any(c.__module__.startswith("torch") for c in type(ds).__mro__)
    keys = [s["__key__"] for s in ds]
    assert sorted(keys) == [f"{i:04d}" for i in range(300)] and keys != sorted(keys)
    loader = exashard.ShardLoader(exashard.ShardDataset(root, shuffle=True, seed=3), batch_size=7)
    got = []
    for n, b in enumerate(loader):
        got += b["__key__"]
        if n == 4:
            state = loader.state_dict()
            break
    again = exashard.ShardDataset(root, shuffle=True, seed=3)
    again.load_state_dict(state)
    assert got + [s["__key__"] for s in again] == keys  # exact resume without torch
    try:
        exashard.ShardLoader(ds, batch_size=5, num_workers=2)
    except exashard.MissingDependencyError as e:
        assert "torch" in str(e)
    else:
        raise SystemExit("workers without torch: no error")
    print("ok", len(keys))
    """
)


def test_loader_without_torch(tmp_path):
    """A plain iterable when torch is missing: seeded order, exact resume, in-process batches."""
    res = subprocess.run([sys.executable, "-c", LOADER, str(tmp_path / "ds")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["ok", "300"]
