"""The loader's sample order: a pure function of (seed, epoch, rank, world size, version).

An epoch's global sequence is built from manifest rows and shard indices only:

1. the shards of the pinned version, in commit order, or permuted (``shuffle``);
2. cut into windows of ``window`` consecutive shards;
3. inside a window (``shuffle``): the window's frames are permuted, grouped into blocks
   of ``block`` frames, and the samples of each block permuted. Without ``shuffle`` a
   block is one frame, in shard order.

``N % world`` positions of the global sequence are dropped (chosen by seed and epoch, so a
different set each epoch); rank ``r`` then takes the contiguous kept positions
``[r*M, (r+1)*M)`` with ``M = N // world``. Contiguous, not strided: a rank reads only
the shards of its part of the sequence, so ranks never multiply storage reads. Inside a
rank, DataLoader workers take interleaved batches of positions.

Window and drop choices use only sample counts from the manifest, so a rank finds where
its part starts without opening any shard.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from ..errors import ConfigError


def rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded by a hash of ``parts`` (stable across runs and machines)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=16, person=b"exashard-order").digest()
    return random.Random(int.from_bytes(digest, "little"))


@dataclass(frozen=True, slots=True)
class Unit:
    """A run of consecutive samples of one shard: one frame, or a whole unreadable shard."""

    slot: int  # position of the shard in the epoch's shard order
    frame: int  # -1: the shard could not be opened (its samples are skipped)
    start: int  # first sample (position inside the shard)
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(slots=True)
class Block:
    """A run of the global sequence: ``units`` in order; sample ``j`` of the block is
    ``samples()[perm[j]]`` (``perm`` None: in order)."""

    gstart: int
    units: list[Unit]
    perm: list[int] | None

    def __len__(self) -> int:
        return sum(len(u) for u in self.units)

    def locate(self) -> list[tuple[int, int]]:
        """For every block position j: (unit index, sample position in its shard)."""
        flat = [(k, i) for k, u in enumerate(self.units) for i in range(u.start, u.stop)]
        return flat if self.perm is None else [flat[j] for j in self.perm]


class EpochPlan:
    """One epoch's order for one rank, from per-shard sample counts (commit order)."""

    def __init__(
        self, counts: Sequence[int], *, seed: int, epoch: int, version: int, rank: int, world: int,
        shuffle: bool, window: int, block: int,
    ) -> None:
        if world < 1 or not 0 <= rank < world:
            raise ConfigError(f"rank must be in [0, world_size) and world_size >= 1, got rank={rank} world_size={world}")
        if window < 1 or block < 1:
            raise ConfigError(f"window and block must be >= 1, got window={window} block={block}")
        self.seed, self.epoch, self.version, self.rank, self.world = seed, epoch, version, rank, world
        self.shuffle, self.window, self.block = shuffle, window, block
        order = list(range(len(counts)))
        if shuffle:
            rng(seed, epoch, version, "shards").shuffle(order)
        self.order = order  # slot -> index in commit order
        self.starts = [0, *accumulate(counts[i] for i in order)]  # global start of each slot
        total = self.starts[-1]
        self.total = total
        self.per_rank = total // world
        ndrop = total - self.per_rank * world
        self.drops = sorted(rng(seed, epoch, version, world, "drop").sample(range(total), ndrop)) if ndrop else []
        m = self.per_rank
        self.lo = self.kept_to_global(rank * m) if m else total
        self.hi = self.kept_to_global(rank * m + m - 1) + 1 if m else total

    def kept_to_global(self, k: int) -> int:
        g = k
        for d in self.drops:
            if d > g:
                break
            g += 1
        return g

    def windows(self) -> int:
        return -(-len(self.order) // self.window)

    def window_slots(self, w: int) -> range:
        return range(w * self.window, min(len(self.order), (w + 1) * self.window))

    def window_at(self, g: int) -> int:
        """The window holding global position ``g``."""
        slot = bisect_right(self.starts, g) - 1
        return max(0, min(slot, len(self.order) - 1)) // self.window

    def blocks(self, w: int, frames: dict[int, list[tuple[int, int]] | None]) -> list[Block]:
        """Window ``w``'s blocks. ``frames[slot]`` is the shard's frame sample ranges
        (``[(start, stop), ...]``), or None where the shard could not be opened."""
        units: list[Unit] = []
        for slot in self.window_slots(w):
            n = self.starts[slot + 1] - self.starts[slot]
            ranges = frames.get(slot)
            if ranges is None:
                units.append(Unit(slot, -1, 0, n))
            else:
                units.extend(Unit(slot, f, a, b) for f, (a, b) in enumerate(ranges) if b > a)
        g = self.starts[self.window_slots(w).start] if units else 0
        out: list[Block] = []
        if not self.shuffle:
            for u in units:
                out.append(Block(g, [u], None))
                g += len(u)
            return out
        rng(self.seed, self.epoch, self.version, "window", w).shuffle(units)
        for b, i in enumerate(range(0, len(units), self.block)):
            group = units[i : i + self.block]
            perm = list(range(sum(len(u) for u in group)))
            rng(self.seed, self.epoch, self.version, "block", w, b).shuffle(perm)
            out.append(Block(g, group, perm))
            g += len(perm)
        return out

    def positions(self, blk: Block, start: int, workers: int, worker: int, batch: int) -> list[tuple[int, int]]:
        """(block position j, rank position p) of the block's samples this reader yields:
        in the rank's range, not dropped, ``p >= start``, and in this worker's batches
        (batch ``(p - start) // batch`` goes to worker ``batch_index % workers``)."""
        n = len(blk)
        g0, g1 = max(blk.gstart, self.lo), min(blk.gstart + n, self.hi)
        if g0 >= g1:
            return []
        base = self.rank * self.per_rank
        drops = self.drops
        dropped = bisect_left(drops, g0)
        out: list[tuple[int, int]] = []
        while g0 < g1:  # runs between dropped positions: there p = g - dropped - base
            if dropped < len(drops) and drops[dropped] == g0:
                dropped, g0 = dropped + 1, g0 + 1
                continue
            end = min(g1, drops[dropped]) if dropped < len(drops) else g1
            shift = dropped + base
            lo = max(g0 - shift, start)  # rank positions [lo, hi) of this run
            hi = end - shift
            size = batch if workers > 1 else max(1, hi - start)  # one worker: the whole run at once
            j = (lo - start) // size if lo < hi else 0
            j += (worker - j) % workers  # this worker's first batch in the run
            while lo < hi and start + j * size < hi:
                a, b = max(lo, start + j * size), min(hi, start + (j + 1) * size)
                out += zip(range(a + shift - blk.gstart, b + shift - blk.gstart), range(a, b))
                j += workers
            g0 = end
        return out
