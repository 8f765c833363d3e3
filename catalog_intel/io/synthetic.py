"""Synthetic product packshots: a women's top drawn on a light studio
background. For demo data and benchmarks only (no licensed photos in the repo);
deterministic for a given seed."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

COLORS = {"black": (25, 25, 28), "white": (246, 246, 242), "grey": (140, 140, 145), "beige": (222, 205, 175),
          "brown": (110, 75, 50), "red": (200, 30, 40), "pink": (240, 160, 190), "orange": (240, 130, 40),
          "yellow": (245, 215, 60), "green": (50, 130, 70), "blue": (50, 100, 200), "navy": (25, 35, 80),
          "purple": (120, 60, 150)}
PATTERNS = ("solid", "striped", "polka dot", "checked")
SLEEVES = ("sleeveless", "short sleeve", "long sleeve")


def draw_top(color: str, pattern: str, sleeve: str, size=(800, 1000), seed: int = 0, noise: float = 0.25) -> Image.Image:
    rng = random.Random(seed)
    w, h = size
    bg = tuple(rng.randint(236, 250) for _ in range(3))
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    rgb = COLORS[color]
    cx, top, bottom = w // 2, int(h * 0.18), int(h * 0.88)
    half = int(w * rng.uniform(0.22, 0.27))
    body = [(cx - half, top + 40), (cx - int(half * 0.45), top), (cx + int(half * 0.45), top),
            (cx + half, top + 40), (cx + half, bottom), (cx - half, bottom)]
    d.polygon(body, fill=rgb)
    arm = {"sleeveless": 0, "short sleeve": int(h * 0.16), "long sleeve": int(h * 0.52)}[sleeve]
    if arm:
        for side in (-1, 1):
            x0 = cx + side * half
            d.polygon([(x0, top + 40), (x0 + side * int(w * 0.16), top + 60 + arm),
                       (x0 + side * int(w * 0.06), top + 90 + arm), (x0, top + 140)], fill=rgb)
    contrast = tuple(255 - c for c in rgb) if sum(rgb) < 380 else tuple(max(0, c - 110) for c in rgb)
    if pattern == "striped":
        for y in range(top + 20, bottom, 36):
            d.rectangle([cx - half, y, cx + half, y + 12], fill=contrast)
    elif pattern == "polka dot":
        for y in range(top + 30, bottom - 10, 60):
            for x in range(cx - half + 20, cx + half - 10, 60):
                d.ellipse([x, y, x + 18, y + 18], fill=contrast)
    elif pattern == "checked":
        for y in range(top + 20, bottom, 50):
            d.rectangle([cx - half, y, cx + half, y + 6], fill=contrast)
        for x in range(cx - half, cx + half, 50):
            d.rectangle([x, top + 40, x + 6, bottom], fill=contrast)
    d.ellipse([cx - 60, top - 30, cx + 60, top + 40], fill=bg)  # neckline
    # Fabric-like noise keeps JPEG sizes close to real packshots: the default 0.25
    # gives ~100 KB per 800x1000 image at quality 88 (0.08 gives ~50 KB).
    grain = Image.effect_noise(size, 18).convert("RGB")
    img = Image.blend(img, grain, noise).filter(ImageFilter.SMOOTH)
    return img


def write_catalog(folder: Path, count: int, size=(800, 1000), quality: int = 88, seed: int = 0,
                  noise: float = 0.25) -> list[Path]:
    """`count` JPEG packshots named sku-00000.jpg... with varied colour/pattern/sleeve."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    names = list(COLORS)
    paths = []
    for i in range(count):
        path = folder / f"sku-{i:05d}.jpg"
        if not path.exists():
            img = draw_top(rng.choice(names), rng.choice(PATTERNS), rng.choice(SLEEVES), size, seed=seed * 100_003 + i,
                           noise=noise)
            img.save(path, "JPEG", quality=quality)
        else:
            rng.choice(names), rng.choice(PATTERNS), rng.choice(SLEEVES)  # keep the sequence aligned
        paths.append(path)
    return paths


DEMO_COUNT, DEMO_SIZE = 12, (480, 600)


def write_demo_catalog(folder: Path, count: int = DEMO_COUNT) -> list[Path]:
    """The demo catalog (`catalog-intel demo`, scripts/make_demo_data.py): small packshots."""
    return write_catalog(folder, count, size=DEMO_SIZE)


def jpeg_with_comment(data: bytes, comment: bytes) -> bytes:
    """The same JPEG with a COM segment added: identical pixels, different bytes
    (and sha256). Lets benchmarks make many distinct catalog files from a few
    drawn ones without drawing each. The segment goes after SOI and any APPn
    segments (JFIF wants APP0 first), where every decoder expects markers."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    if len(comment) > 65533:
        raise ValueError("JPEG comment longer than 65533 bytes")
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and 0xE0 <= data[pos + 1] <= 0xEF:  # APP0..APP15
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return data[:pos] + segment + data[pos:]
