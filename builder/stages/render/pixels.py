"""What is read from a picture's pixels, done once per picture: its PNG bytes, and the grey-level
spread the structural check needs.

The render stage has every picture it draws in memory. It writes the PNG here (a plain
encoder: Pillow tries five row filters per row, which costs more than the compression itself
on the flat cards we draw) and remembers the picture's grey spread by its file (content-addressed), so a
check in the same process reads it instead of decoding the file again. A picture this
process did not draw (an earlier run's, another worker's) is decoded as before.
"""

from __future__ import annotations

import io
import struct
import threading
import zlib
from collections import OrderedDict

import numpy as np
from PIL import Image

# PNG colour type per Pillow mode we encode ourselves (8 bits a sample); others go to Pillow.
_COLOUR_TYPES = {"L": 0, "RGB": 2, "LA": 4, "RGBA": 6}
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Level 1 by measurement on our cards: within a few % of level 6's size, several times faster.
PNG_LEVEL = 1


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bytes(image: Image.Image) -> bytes:
    """`image` as PNG: every row unfiltered, then zlib at `PNG_LEVEL`. The pixels decode the
    same as from Pillow's own PNG; only the bytes differ."""
    colour_type = _COLOUR_TYPES.get(image.mode)
    if colour_type is None:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=PNG_LEVEL)
        return buffer.getvalue()
    width, height = image.size
    rows = np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(height, -1)
    raw = np.zeros((height, rows.shape[1] + 1), dtype=np.uint8)  # a leading 0 per row: filter None
    raw[:, 1:] = rows
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    data = zlib.compress(raw.tobytes(), PNG_LEVEL)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def grey_spread(grey: Image.Image) -> float:
    """The standard deviation of a grey ("L") picture's pixels: a blank picture has little."""
    return float(np.asarray(grey, dtype=np.float32).std())


class _Spreads:
    """Grey spreads by file (relative to the artifacts folder; its name is its content's hash),
    for the most recent pictures this process wrote."""

    def __init__(self, size: int = 65536):
        self._size = size
        self._known: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, file: str, spread: float) -> None:
        with self._lock:
            self._known[file] = spread
            self._known.move_to_end(file)
            while len(self._known) > self._size:
                self._known.popitem(last=False)

    def recall(self, file: str) -> float | None:
        with self._lock:
            return self._known.get(file)


spreads = _Spreads()
