"""Fuzzing the parsers (short run): shard reader, index and seek table, encrypted container,
manifest reader, tar iterator. Only ``ExashardError`` subclasses may escape; no case may
hang; Python allocations stay bounded by the input size. ``tests/_fuzz.py`` (targets,
property) and ``tests/_mutate.py`` (mutators) are shared with ``bench/fuzz.py``, the long
run; each bug the fuzzing found is pinned below as an ``@example``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from _fuzz import (
    Corpus,
    build_corpus,
    draw_encrypted_spec,
    draw_manifest_spec,
    draw_tar_spec,
    encrypted_case,
    index_case,
    manifest_case,
    random_index_case,
    random_shard_case,
    reader_case,
    tar_case,
    zframe_case,
)
from _mutate import HypDraw, draw_byte_op, draw_shard_spec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

BASES = ["zstd", "raw", "mixed"]
# a loaded 2-core CI box: the deadline flags slow cases, the harness's SIGALRM stops endless ones
FUZZ = settings(deadline=timedelta(seconds=3), suppress_health_check=[HealthCheck.too_slow], database=None)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return build_corpus()


@st.composite
def shard_specs(draw):
    return draw_shard_spec(HypDraw(draw), BASES)


@st.composite
def encrypted_specs(draw):
    return draw_encrypted_spec(HypDraw(draw), BASES)


@st.composite
def tar_specs(draw):
    return draw_tar_spec(HypDraw(draw))


@st.composite
def zframe_specs(draw):
    d = HypDraw(draw)
    return {"frame": d.int(0, 64), "ops": [draw_byte_op(d) for _ in range(d.int(1, 3))]}


@st.composite
def manifest_specs(draw):
    return draw_manifest_spec(HypDraw(draw))


def shard(base: str, *ops: tuple, row: str | None = None, **flags: object) -> dict[str, object]:
    """A shard spec for a regression example: index CRC and frame digests fixed unless told."""
    spec = {"base": base, "ops": list(ops), "fix_crc": True, "fix_digest": True, "row": row, "zero_copy": False,
            "read_into": True}
    spec.update(flags)
    return spec


# Regressions, each once a bug (HEAD before the fuzzing work):
# a Raw frame whose one sample has no members: UnboundLocalError in iter_samples (`del d, v`)
EMPTY_RAW_SAMPLE = shard("raw", ("empty", 0))
# a key end inside a multi-byte UTF-8 character: UnicodeDecodeError from keys()/key(i)
SPLIT_UTF8_KEY = shard("zstd", ("ix", "key_ends", 3, ("add", -1)))
# a 169-byte frame declaring 4 GiB, seek table agreeing: libzstd allocated all 4 GiB up front
FRAME_BOMB = shard("raw", ("bomb", -1, 2**32 - 1, 40))
# the same lie within zstd's ratio limit: 5 MiB declared, 1 MiB held (decompressed into growing buffers)
FRAME_LIE = shard("raw", ("bomb", -1, 5 << 20, 8))
# a manifest row whose index_size is negative (offset + size still equal to the file size): a negative read
NEGATIVE_ROW = shard("raw", ("blob", ("truncate", 25)), row="fresh")
# a PAX header whose size field reads -512 (checksum fixed): verify() parsed the same header forever
PAX_LOOP = shard("raw", ("content", 3, ("hdr", 0, "size", b"-0000001000", True)))
# bytes after a compressed frame, inside its stored range (digest fixed): the one-shot decompression
# ignored them, decompressing into a buffer refused them; now both refuse (as for Raw-block frames)
# a refused frame (digest mismatch; corrupt zstd) must hand its pool buffers back: found by
# mutating the returns away
REFUSED_READ = shard("raw", ("fcs", 44, ("abs", 10301005781491613323)), fix_digest=False, row="orig", zero_copy=True)
REFUSED_DECODE = shard("mixed", ("frame", 14, ("int", 1380794134, 8, ("add", 1))), ("dupkey", 29, 24))
FRAME_TAIL = shard("mixed", ("dupkey", 29, 1), ("frame", 50, ("dup", 1719315961, 545)), row="fresh", zero_copy=True)


# -- (1) the shard reader ------------------------------------------------------------------


@settings(FUZZ, max_examples=250)
@given(spec=shard_specs())
@example(spec=EMPTY_RAW_SAMPLE)
@example(spec=shard("raw", ("empty", 3), zero_copy=True, read_into=False))
@example(spec=SPLIT_UTF8_KEY)
@example(spec=FRAME_BOMB)
@example(spec=FRAME_LIE)
@example(spec=NEGATIVE_ROW)
@example(spec=PAX_LOOP)
@example(spec=FRAME_TAIL)
@example(spec=REFUSED_READ)
@example(spec=REFUSED_DECODE)
def test_reader_mutated_shard(corpus, spec):
    reader_case(corpus, spec)


@settings(FUZZ, max_examples=100)
@given(data=st.binary(max_size=4096), row=st.none() | st.integers(0, 1 << 16), read_into=st.booleans())
def test_reader_random_bytes(data, row, read_into):
    random_shard_case(data, {"row": row, "read_into": read_into})


# -- (2) index frame, seek table, Raw-block frames ---------------------------------------


@settings(FUZZ, max_examples=200)
@given(spec=shard_specs())
@example(spec=SPLIT_UTF8_KEY)
@example(spec=FRAME_BOMB)
def test_index_and_seek_table_mutated(corpus, spec):
    index_case(corpus, spec)


@settings(FUZZ, max_examples=150)
@given(data=st.binary(max_size=2048), which=st.integers(0, 3))
def test_index_parsers_random_bytes(data, which):
    random_index_case(data, which)


@settings(FUZZ, max_examples=100)
@given(spec=zframe_specs())
def test_raw_frames_mutated(corpus, spec):
    zframe_case(corpus, spec)


# -- (3) the encrypted container ---------------------------------------------------------


@settings(FUZZ, max_examples=200)
@given(spec=encrypted_specs())
# behind the authenticated source the XXH3 frame check is skipped: the parser alone must hold
@example(spec={**EMPTY_RAW_SAMPLE, "mode": "plain"})
@example(spec={**FRAME_BOMB, "mode": "plain", "fix_digest": False})
@example(spec={**SPLIT_UTF8_KEY, "mode": "plain"})
def test_encrypted_shard_mutated(corpus, spec):
    encrypted_case(corpus, spec)


@settings(FUZZ, max_examples=60)
@given(data=st.binary(max_size=4096), zero_copy=st.booleans())
def test_encrypted_random_bytes(corpus, data, zero_copy):
    encrypted_case(corpus, {"mode": "stored", "ops": [("set", 0, data)] if data else [("truncate", 0)],
                            "row": False, "zero_copy": zero_copy, "read_into": True})


# -- (4) the manifest reader ---------------------------------------------------------------

# reading version 5 starts from checkpoint 3 and applies commits 4 and 5; the latest from checkpoint 6
V4, V5 = "manifest/v00000000000000000004.json", "manifest/v00000000000000000005.json"
CP3, CP6 = "manifest/checkpoints/v00000000000000000003.json", "manifest/checkpoints/v00000000000000000006.json"


def files(*muts: tuple, version: int | None = None) -> dict[str, object]:
    return {"files": list(muts), "version": version, "drop": 1}


@settings(FUZZ, max_examples=200)
@given(spec=manifest_specs())
@example(spec=files((V4, [("raw", 1)]), version=5))  # "[" x 50,000: RecursionError from json.loads
@example(spec=files((V4, [("raw", 2)]), version=5))  # a 5,000-digit number: ValueError (int digit limit)
@example(spec=files(("manifest/_last_checkpoint.json", [("raw", 1)])))  # the hint: RecursionError
@example(spec=files(("manifest/_dataset.json", [("raw", 1)])))  # dataset id: RecursionError
@example(spec=files((V5, [("set", 43, 0)]), version=5))  # "remove": null: TypeError
@example(spec=files((V5, [("set", 2, 0)]), version=5))  # a row that is null: AttributeError
@example(spec=files((V5, [("set", 1, 16)]), version=5))  # "add": {"a": 1}: AttributeError
@example(spec=files((CP3, [("set", 6, 0)]), version=4))  # a checkpoint row that is null: AttributeError
# a paged checkpoint listing one shard more than its pages hold: KeyError from ShardIndex.row
@example(spec=files((CP6, [("dup", 13, 0), ("dup", 25, 0)])))
# a checkpoint page row whose id is "\udcff" (a lone surrogate JSON allows): UnicodeEncodeError naming the page
@example(spec={"files": [(15, [("set", 3575, 19)])], "version": 7, "drop": 19})
def test_manifest_mutated(corpus, spec):
    manifest_case(corpus, spec)


# -- (5) the tar member iterator -------------------------------------------------------


@settings(FUZZ, max_examples=200)
@given(spec=tar_specs())
@example(spec={"ops": [("hdr", 0, "size", b"-0000001000", True)], "base": 0})  # size -512: a negative member size
@example(spec={"ops": [("hdr", 1, "size", b"-0000001000", True)], "base": 0})  # a PAX header of size -512: endless loop
@example(spec={"ops": [("pax", 1, b"13 size=-512\n")], "base": 0})  # PAX size -512: endless loop
@example(spec={"ops": [("pax", 1, b"11 size=-1\n")], "base": 0})  # PAX size -1: a negative member size
@example(spec={"ops": [("pax", 1, b"9" * 5000 + b" a=b\n")], "base": 0})  # a length past int()'s digit limit
def test_tar_mutated(corpus, spec):
    tar_case(corpus, spec)


@settings(FUZZ, max_examples=100)
@given(data=st.binary(max_size=3072))
def test_tar_random_bytes(corpus, data):
    tar_case(corpus, {"data": data, "ops": []})
