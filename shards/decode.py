"""Small decoding helpers for samples (bytes or memoryviews in, Python objects out).

Samples are bytes by default; decode only what a training step needs. ``npy`` needs
numpy and images need Pillow (``pip install 'exashard[image]'``); both are imported only
when used.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import MissingDependencyError, SampleError


def _bytes(value: bytes | memoryview) -> bytes | memoryview:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise SampleError(f"expected bytes to decode, got {type(value).__name__}")
    return value


def decode_txt(value: bytes | memoryview) -> str:
    try:
        return bytes(_bytes(value)).decode("utf-8")
    except UnicodeDecodeError as e:
        raise SampleError(f"text field is not UTF-8 (at byte {e.start})") from None


def decode_json(value: bytes | memoryview) -> Any:
    try:
        return json.loads(bytes(_bytes(value)))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SampleError(f"json field is not valid JSON ({e})") from None


def decode_npy(value: bytes | memoryview) -> Any:
    try:
        import numpy as np
    except ImportError:
        raise MissingDependencyError("decoding npy fields needs numpy: pip install numpy") from None
    try:
        return np.load(io.BytesIO(bytes(_bytes(value))), allow_pickle=False)
    except ValueError as e:
        raise SampleError(f"npy field is not a valid array ({e})") from None


def decode_pil(value: bytes | memoryview) -> Any:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise MissingDependencyError("decoding images needs Pillow: pip install 'exashard[image]'") from None
    try:
        img = Image.open(io.BytesIO(bytes(_bytes(value))))
        img.load()
        return img
    except (UnidentifiedImageError, OSError) as e:
        raise SampleError(f"image field does not decode ({e})") from None


DEFAULT_DECODERS: dict[str, Callable[[Any], Any]] = {
    "txt": decode_txt, "json": decode_json, "npy": decode_npy,
}
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def decode(sample: Mapping[str, Any], *, images: bool = False, decoders: Mapping[str, Callable[[Any], Any]] | None = None) -> dict[str, Any]:
    """A copy of ``sample`` with known fields decoded (by the extension after the last dot);
    others are left as bytes. ``images=True`` also opens images with Pillow."""
    table = dict(DEFAULT_DECODERS if decoders is None else decoders)
    if images:
        table.update({e: decode_pil for e in IMAGE_EXTS})
    out: dict[str, Any] = {}
    for k, v in sample.items():
        fn = None if k.startswith("__") else table.get(k.rsplit(".", 1)[-1].lower())
        out[k] = fn(v) if fn is not None else v
    return out
