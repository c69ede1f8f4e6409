"""The benchmark's PNG plot, drawn with numpy and written with zlib (no plotting library is installed).

Top panel: each trainer class on its own row, one dot per trial at its L1 distance to the round's
reference (log scale), with the protocol tolerance as a red line: the honest cluster sits left of the
line, every adversary class should sit right of it. Bottom panel: a 2-D PCA projection of the 16-dim
fingerprints, each taken relative to its round's `honest` fingerprint (rounds differ in data and seed)
and compressed per coordinate with sign(x) * log10(1 + |x|) (raw distances span six decades).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# 5x7 bitmap font: 7 rows per glyph, bit 4 = leftmost column. Lower case is drawn as upper case.
_FONT = {
    "0": (14, 17, 19, 21, 25, 17, 14),
    "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31),
    "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2),
    "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14),
    "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14),
    "9": (14, 17, 17, 15, 1, 2, 12),
    "A": (14, 17, 17, 31, 17, 17, 17),
    "B": (30, 17, 17, 30, 17, 17, 30),
    "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (28, 18, 17, 17, 17, 18, 28),
    "E": (31, 16, 16, 30, 16, 16, 31),
    "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15),
    "H": (17, 17, 17, 31, 17, 17, 17),
    "I": (14, 4, 4, 4, 4, 4, 14),
    "J": (7, 2, 2, 2, 2, 18, 12),
    "K": (17, 18, 20, 24, 20, 18, 17),
    "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17),
    "N": (17, 17, 25, 21, 19, 17, 17),
    "O": (14, 17, 17, 17, 17, 17, 14),
    "P": (30, 17, 17, 30, 16, 16, 16),
    "Q": (14, 17, 17, 17, 21, 18, 13),
    "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30),
    "T": (31, 4, 4, 4, 4, 4, 4),
    "U": (17, 17, 17, 17, 17, 17, 14),
    "V": (17, 17, 17, 17, 17, 10, 4),
    "W": (17, 17, 17, 21, 21, 21, 10),
    "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 17, 10, 4, 4, 4),
    "Z": (31, 1, 2, 4, 8, 16, 31),
    " ": (0,) * 7,
    ".": (0, 0, 0, 0, 0, 12, 12),
    ",": (0, 0, 0, 0, 12, 4, 8),
    "-": (0, 0, 0, 31, 0, 0, 0),
    "_": (0, 0, 0, 0, 0, 0, 31),
    ":": (0, 12, 12, 0, 12, 12, 0),
    "%": (24, 25, 2, 4, 8, 19, 3),
    "(": (2, 4, 8, 8, 8, 4, 2),
    ")": (8, 4, 2, 2, 2, 4, 8),
    "/": (0, 1, 2, 4, 8, 16, 0),
    "=": (0, 0, 31, 0, 31, 0, 0),
    "+": (0, 4, 4, 31, 4, 4, 0),
    "<": (2, 4, 8, 16, 8, 4, 2),
    ">": (8, 4, 2, 1, 2, 4, 8),
    "?": (14, 17, 1, 2, 4, 0, 4),
    "^": (4, 10, 17, 0, 0, 0, 0),
    "'": (4, 4, 8, 0, 0, 0, 0),
    "*": (0, 4, 21, 14, 21, 4, 0),
    "|": (4, 4, 4, 4, 4, 4, 4),
}

WHITE, BLACK, GREY, LIGHT, RED = (255, 255, 255), (20, 20, 20), (120, 120, 120), (225, 225, 225), (210, 30, 30)
HONEST_COLOURS = [(0, 140, 60), (60, 180, 90), (120, 200, 60)]
ADVERSARY_COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
    (188, 189, 34),
    (214, 39, 40),
    (80, 80, 200),
    (100, 100, 100),
]


class Canvas:
    def __init__(self, width: int, height: int):
        self.pixels = np.full((height, width, 3), 255, dtype=np.uint8)

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour) -> None:
        x0, x1 = max(0, min(x0, x1)), min(self.width, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.height, max(y0, y1))
        if x1 > x0 and y1 > y0:
            self.pixels[y0:y1, x0:x1] = colour

    def hline(self, x0, x1, y, colour, dash: int = 0) -> None:
        for x in range(int(min(x0, x1)), int(max(x0, x1)) + 1):
            if not dash or (x // dash) % 2 == 0:
                self.rect(x, int(y), x + 1, int(y) + 1, colour)

    def vline(self, x, y0, y1, colour, dash: int = 0, width: int = 1) -> None:
        for y in range(int(min(y0, y1)), int(max(y0, y1)) + 1):
            if not dash or (y // dash) % 2 == 0:
                self.rect(int(x), y, int(x) + width, y + 1, colour)

    def dot(self, x: float, y: float, colour, radius: int = 3) -> None:
        cx, cy = int(round(x)), int(round(y))
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                if dx * dx + dy * dy <= radius * radius + 1:
                    self.rect(cx + dx, cy + dy, cx + dx + 1, cy + dy + 1, colour)

    def text(self, x: int, y: int, message: str, colour=BLACK, scale: int = 2, align: str = "left") -> None:
        width = len(message) * 6 * scale
        if align == "right":
            x -= width
        elif align == "center":
            x -= width // 2
        for i, char in enumerate(message.upper()):
            rows = _FONT.get(char, _FONT["?"])
            for r, bits in enumerate(rows):
                for c in range(5):
                    if bits & (1 << (4 - c)):
                        px, py = x + (i * 6 + c) * scale, y + r * scale
                        self.rect(px, py, px + scale, py + scale, colour)

    def save_png(self, path: str | Path) -> None:
        height, width, _ = self.pixels.shape
        raw = b"".join(b"\x00" + self.pixels[row].tobytes() for row in range(height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        png = (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )
        Path(path).write_bytes(png)


def _colours(names: Sequence[str], honest: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    out, h, a = {}, 0, 0
    for name in names:
        if name in honest:
            out[name] = HONEST_COLOURS[h % len(HONEST_COLOURS)]
            h += 1
        else:
            out[name] = ADVERSARY_COLOURS[a % len(ADVERSARY_COLOURS)]
            a += 1
    return out


def _tick_label(decade: int) -> str:
    return str(10**decade) if decade <= 3 else f"1E{decade}"


def plot_benchmark(
    path: str | Path,
    title: str,
    distances: Mapping[str, Sequence[float]],
    tolerance: int,
    relative_prints: Mapping[str, Sequence[Sequence[int]]],
    honest: Sequence[str],
) -> None:
    """`distances`: class -> L1 distances to the round reference (one per round); `relative_prints`:
    class -> fingerprints minus the round's honest fingerprint."""
    names = list(distances)
    colours = _colours(names, honest)
    row_h, left, right = 30, 250, 40
    strip_top = 60
    strip_h = row_h * len(names)
    pca_top = strip_top + strip_h + 90
    pca_size = 420
    canvas = Canvas(1100, pca_top + pca_size + 60)
    canvas.text(20, 16, title, scale=2)

    # --- strip plot of distances (log10(1 + d)) ---
    top_decade = max(1, math.ceil(math.log10(1 + max(max(v) for v in distances.values() if v) + 1)))
    plot_w = canvas.width - left - right

    def xpos(d: float) -> float:
        return left + plot_w * math.log10(1 + max(d, 0)) / top_decade

    canvas.text(
        20,
        strip_top - 24,
        "L1 distance of each delta to its round's reference (log scale), one dot per trial",
        GREY,
        scale=1,
    )
    for decade in range(top_decade + 1):
        x = left + plot_w * decade / top_decade
        canvas.vline(x, strip_top, strip_top + strip_h, LIGHT)
        canvas.text(int(x), strip_top + strip_h + 8, _tick_label(decade), GREY, scale=1, align="center")
    for row, name in enumerate(names):
        y = strip_top + row * row_h + row_h // 2
        canvas.hline(left, left + plot_w, y, LIGHT)
        canvas.text(left - 10, y - 7, name, colours[name], scale=2, align="right")
        for i, d in enumerate(distances[name]):
            jitter = (i * 7919) % 11 - 5
            canvas.dot(xpos(d), y + jitter, colours[name], radius=3)
    tx = xpos(tolerance)
    canvas.vline(tx, strip_top - 6, strip_top + strip_h + 4, RED, dash=4, width=2)
    canvas.text(int(tx) + 6, strip_top + strip_h + 22, f"tolerance = {tolerance}", RED, scale=1)
    canvas.rect(left, strip_top + strip_h, left + plot_w, strip_top + strip_h + 1, BLACK)

    # --- PCA of the relative fingerprints ---
    points, labels = [], []
    for name in names:
        for fp in relative_prints.get(name, []):
            points.append(np.sign(fp) * np.log10(1 + np.abs(np.asarray(fp, dtype=np.float64))))
            labels.append(name)
    canvas.text(
        20,
        pca_top - 30,
        "PCA of the 16-dim fingerprints, relative to the round's honest fingerprint, coordinates sign(x)*log10(1+|x|)",
        GREY,
        scale=1,
    )
    if len(points) >= 3:
        matrix = np.stack(points)
        centred = matrix - matrix.mean(axis=0)
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T
        explained = singular[:2] ** 2 / max(float((singular**2).sum()), 1e-12)
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
        x0, y0 = 60, pca_top
        canvas.rect(x0, y0, x0 + pca_size, y0 + 1, GREY)
        canvas.rect(x0, y0 + pca_size, x0 + pca_size, y0 + pca_size + 1, GREY)
        canvas.rect(x0, y0, x0 + 1, y0 + pca_size, GREY)
        canvas.rect(x0 + pca_size, y0, x0 + pca_size + 1, y0 + pca_size + 1, GREY)
        order = sorted(range(len(labels)), key=lambda i: labels[i] in honest)  # honest drawn last, on top
        for i in order:
            px = x0 + 10 + (pca_size - 20) * (xy[i, 0] - lo[0]) / span[0]
            py = y0 + pca_size - 10 - (pca_size - 20) * (xy[i, 1] - lo[1]) / span[1]
            canvas.dot(px, py, colours[labels[i]], radius=3)
        canvas.text(x0 + pca_size // 2, y0 + pca_size + 10, f"PC1 ({explained[0]:.0%})", GREY, scale=1, align="center")
        canvas.text(x0 - 8, y0 - 14, f"PC2 ({explained[1]:.0%})", GREY, scale=1)
        for row, name in enumerate(names):
            ly = y0 + 10 + row * 28
            canvas.dot(x0 + pca_size + 40, ly + 7, colours[name], radius=5)
            canvas.text(x0 + pca_size + 56, ly, name, colours[name], scale=2)
    canvas.save_png(path)
