"""Decoding helpers: json, txt, npy and images, from bytes and memoryviews."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from exashard.errors import SampleError
from exashard.shards import ShardWriter, iter_dataset
from exashard.shards.decode import decode, decode_json, decode_npy, decode_pil, decode_txt


def test_decode_roundtrip_through_shards(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    buf = io.BytesIO()
    np.save(buf, arr)
    img = io.BytesIO()
    Image.new("RGB", (4, 3), (10, 20, 30)).save(img, format="PNG")
    with ShardWriter(str(tmp_path / "ds")) as w:
        w.write({"__key__": "k", "txt": "héllo", "json": '{"a": [1, 2]}', "npy": buf.getvalue(), "png": img.getvalue(),
                 "cls": b"3"})
    for zc in (False, True):
        (s,) = iter_dataset(str(tmp_path / "ds"), zero_copy=zc)
        d = decode(s, images=True)
        assert d["txt"] == "héllo" and d["json"] == {"a": [1, 2]} and bytes(d["cls"]) == b"3"
        assert np.array_equal(d["npy"], arr) and d["png"].size == (4, 3) and d["png"].getpixel((0, 0)) == (10, 20, 30)
        assert decode(s)["png"] is s["png"]  # images only when asked


@pytest.mark.parametrize(
    "fn, data, match",
    [(decode_txt, b"\xff", "not UTF-8"), (decode_json, b"{", "not valid JSON"), (decode_npy, b"nope", "not a valid array"),
     (decode_pil, b"nope", "does not decode"), (decode_json, 5, "expected bytes")],
)
def test_decode_errors(fn, data, match):
    with pytest.raises(SampleError, match=match):
        fn(data)
