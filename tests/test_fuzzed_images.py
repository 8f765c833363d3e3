"""Damaged files of every format Pillow decodes (bytes flipped, files cut short, both) never
stop a run: each one becomes a row or a reject whose reason comes from the decoder."""

from __future__ import annotations

import csv
import io
import random

import numpy as np
import polars as pl
import pytest
from PIL import Image

from catalog_intel.errors import ImageRejected
from catalog_intel.io.images import decode_rgb
from conftest import run_catalog, write_config

FORMATS = {"GIF": "gif", "TIFF": "tif", "PNG": "png", "WEBP": "webp", "JPEG": "jpg"}
PER_FORMAT = 42  # 5 formats x 42 = 210 damaged files
LIMIT = 89_478_485


def _originals() -> dict[str, list[bytes]]:
    """Small real encodings of each format: noise (many codes) and flat colour, one animated GIF
    and one compressed TIFF, so the damage hits more of each decoder."""
    rng = np.random.default_rng(7)
    noise = Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    flat = Image.new("RGBA", (24, 20), (200, 40, 40, 180))
    out: dict[str, list[bytes]] = {}
    for fmt in FORMATS:
        encoded = []
        for img, save in ((noise, {}), (flat, {}), (noise.convert("P"), {"save_all": True, "append_images": [flat.convert("P")]}),
                          (noise, {"compression": "tiff_lzw"})):
            if ("append_images" in save and fmt not in ("GIF", "WEBP", "TIFF")) or ("compression" in save and fmt != "TIFF"):
                continue
            if fmt == "JPEG" and img.mode != "RGB":
                img = img.convert("RGB")
            buf = io.BytesIO()
            img.save(buf, fmt, **save)
            encoded.append(buf.getvalue())
        out[fmt] = encoded
    return out


def fuzzed_files(seed: int = 1812) -> dict[str, bytes]:
    """name -> damaged bytes: per format, PER_FORMAT files with bytes flipped, cut short, or both."""
    rng = random.Random(seed)
    files = {}
    for fmt, originals in _originals().items():
        for k in range(PER_FORMAT):
            data = bytearray(rng.choice(originals))
            how = ("flip", "cut", "both")[k % 3]
            if how in ("flip", "both"):
                for _ in range(rng.randint(1, 6)):
                    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            if how in ("cut", "both"):
                data = data[: rng.randrange(8, len(data))]
            files[f"fuzz-{fmt.lower()}-{k:02d}-{how}.{FORMATS[fmt]}"] = bytes(data)
    return files


def test_decode_rgb_turns_every_damaged_file_into_an_image_or_a_reject():
    files = fuzzed_files()
    assert len(files) >= 200
    outcomes = {"image": 0, "reject": 0}
    for name, data in files.items():
        try:
            img = decode_rgb(data, LIMIT, min_side=32)
        except ImageRejected as exc:
            assert str(exc).strip(), name
            outcomes["reject"] += 1
        else:
            assert img.mode == "RGB" and img.width > 0 and img.height > 0, name
            outcomes["image"] += 1
    # Both outcomes occur: the damage is neither all fatal nor all harmless.
    assert outcomes["reject"] >= 50 and outcomes["image"] >= 10, outcomes


def test_decoder_errors_other_than_oserror_become_rejects_with_the_decoders_message(monkeypatch, caplog):
    """Pillow's GIF and TIFF decoders raise IndexError, struct.error, TypeError on damaged files."""
    import logging
    import struct

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "GIF")
    for error in (IndexError("list index out of range"), struct.error("unpack requires a buffer of 4 bytes"),
                  TypeError("'NoneType' object is not subscriptable")):
        def broken_load(self, error=error):
            raise error

        monkeypatch.setattr("PIL.ImageFile.ImageFile.load", broken_load)
        with caplog.at_level(logging.DEBUG, logger="catalog_intel.io.images"):
            with pytest.raises(ImageRejected) as caught:
                decode_rgb(buf.getvalue(), LIMIT)
        assert str(caught.value) == f"corrupt image data: {type(error).__name__}: {error}"
        assert caplog.records[-1].exc_info[0] is type(error)  # the traceback is in the debug log


@pytest.mark.slow
def test_a_folder_of_damaged_images_runs_to_the_end(prefect_server, tiny_clip, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    damaged = fuzzed_files()
    for name, data in damaged.items():
        (src / name).write_bytes(data)
    good = [f"good-{k}.{ext}" for k, ext in enumerate(FORMATS.values())]
    for k, name in enumerate(good):
        Image.new("RGB", (64, 80), (40 * k, 200 - 30 * k, 90)).save(src / name)
    (src / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    config = write_config(tmp_path / "catalog-intel.toml", tiny_clip, {"run": {"max_reject_share": 1.0}}, llm=None)

    summary = run_catalog(src, out, config, no_llm=True)

    rows = set(pl.read_parquet(out / "catalog.parquet")["image"])
    with open(out / "rejects.csv", newline="") as fh:
        rejects = {r["image"]: r["reason"] for r in csv.DictReader(fh)}
    assert summary["inputs"] == len(damaged) + len(good) + 1
    assert summary["inputs"] == summary["rows"] + summary["rejects"] + summary["skipped"]
    assert (summary["rows"], summary["rejects"], summary["skipped"]) == (len(rows), len(rejects), 1)
    assert set(good) <= rows
    assert not rows & set(rejects)
    for name in damaged:
        assert name in rows or rejects.get(name, "").strip(), f"{name} is neither a row nor a reject with a reason"
    assert len(set(damaged) & set(rejects)) >= 50
