"""A small write -> commit -> read round trip: the quickstart until ingest lands.

    python examples/roundtrip.py DST KEYRING

writes 1,000 samples (a caption, a JSON sidecar, 20 KiB of binary) into DST as
encrypted exashard shards, reads them back sequentially and by key (decrypting in
memory), and prints a summary. KEYRING is a local keyring file, created if missing;
keep it away from the data. Then try `exashard inspect DST`,
`exashard head DST -n 3 --keyring KEYRING` and `exashard verify DST --keyring KEYRING`.
"""

from __future__ import annotations

import json
import os
import random
import sys

from exashard import ShardReader, ShardWriter, inspect
from exashard.privacy.keys import LocalKeyring
from exashard.shards import iter_dataset, open_manifest, open_shard


def main(dst: str, keyring: str) -> None:
    if not os.path.exists(keyring):
        print(f"created keyring {LocalKeyring.create(keyring).path}")
    rnd = random.Random(0)
    with ShardWriter(dst, keyring=keyring, target_size=8 << 20) as w:
        for i in range(1000):
            w.write(
                {
                    "__key__": f"demo/{i:06d}",
                    "txt": f"sample {i}: a photo of a {rnd.choice(['dog', 'cat', 'bird'])}",
                    "json": json.dumps({"id": i, "width": 640, "height": 480}),
                    "bin": rnd.randbytes(20 * 1024),
                }
            )
    print(f"wrote {sum(s.samples for s in w.shards)} samples in {len(w.shards)} shards, version {w.version}")
    n = sum(1 for _ in iter_dataset(dst, keyring=keyring))
    m = open_manifest(dst)
    last = list(m.read().shards.values())[-1]
    with open_shard(m, last, keyring=keyring) as r:
        assert isinstance(r, ShardReader)
        one = r.get(r.keys()[-1])
    print(f"read back {n} samples; last key {one['__key__']!r}: {one['txt'].decode()}")
    info = inspect(dst)
    print(f"dataset {info['dataset_id']}: {info['shards']} shards, {info['samples']} samples, {info['bytes']} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
