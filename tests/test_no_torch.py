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
