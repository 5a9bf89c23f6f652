"""Regenerate examples/raw: small photos with GPS EXIF, captions with fake PII, JSON
sidecars with a user id. All personal data here is fake. Needs Pillow.

    python examples/make_raw.py examples/raw
"""

from __future__ import annotations

import json
import os
import random
import sys

from PIL import Image


def gps_exif(lat: float, lon: float, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "ExampleCam"  # Make
    exif[0x0110] = "Model X-100 serial 99812"  # Model
    exif[0x0112] = orientation
    gps = {1: "N", 2: (float(int(lat)), float(int((lat % 1) * 60)), 0.0), 3: "E", 4: (float(int(lon)), float(int((lon % 1) * 60)), 0.0)}
    exif[0x8825] = gps
    return exif.tobytes()


CAPTIONS = [
    "Sunset over the bay. Shot by Jane Doe, reach me at jane.doe@example.com",
    "Team offsite photo - questions to +1 415 555 0134 or bob.smith@example.org",
    "Receipt scan: card 4111 1111 1111 1111, exp 12/29",
    "Our office router at 192.168.10.45 (MAC 00:1A:2B:3C:4D:5E) in the background",
    "Donations welcome: IBAN GB82 WEST 1234 5698 7654 32",
    "A dog on the beach, no personal data here",
]


def main(out: str) -> None:
    rnd = random.Random(7)
    os.makedirs(out, exist_ok=True)
    for i, caption in enumerate(CAPTIONS):
        stem = os.path.join(out, f"img_{i:04d}")
        img = Image.new("RGB", (48, 32), (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
        for x in range(48):
            img.putpixel((x, x % 32), (255, 255, 255))
        img.save(stem + ".jpg", quality=85, exif=gps_exif(37.77 + i / 100, 122.41 + i / 100, 6 if i % 2 else 1))
        with open(stem + ".txt", "w") as f:
            f.write(caption + "\n")
        side = {"user_id": 1000 + i, "caption": caption, "camera": {"model": "X-100", "serial": "99812"},
                "location": {"lat": 37.77, "lon": -122.41}, "tags": ["example", f"n{i}"]}
        with open(stem + ".json", "w") as f:
            json.dump(side, f)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "raw"))
