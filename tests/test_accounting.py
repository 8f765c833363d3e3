"""Every file under the input folder is accounted for: a row, a reject with a reason,
or a skipped dot file. inputs = rows + rejects + skipped, exactly."""

from __future__ import annotations

import csv
import io

import polars as pl
import pytest
from PIL import Image

from catalog_intel.io import images
from catalog_intel.io.ingest import build_inventory
from conftest import run_catalog


def _encoded(fmt: str, color, **save) -> bytes:
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    buf = io.BytesIO()
    Image.new("RGB", (64, 80), color).save(buf, fmt, **save)
    return buf.getvalue()


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 80), c) for c in ((200, 30, 30), (30, 30, 200))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _odd_folder(root):
    files = {
        "packshot.jpg": _encoded("JPEG", (200, 40, 40)),
        "animated.gif": _animated_gif(),
        "scan.bmp": _encoded("BMP", (40, 200, 40)),
        "print.tif": _encoded("TIFF", (40, 40, 200)),
        "phone.heic": _encoded("HEIF", (220, 220, 40)),
        "web.avif": _encoded("AVIF", (40, 220, 220)),
        "notes.txt": b"supplier notes, not a photo",
        "fake.png": b"this is text with an image extension",
        ".DS_Store": b"\0\0\0\1Bud1",
        "sub/.hidden/thumb.jpg": _encoded("JPEG", (1, 2, 3)),
        "sub/deep.png": _encoded("PNG", (90, 90, 90)),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


EXPECTED_ROWS = {"packshot.jpg", "animated.gif", "scan.bmp", "print.tif", "phone.heic", "web.avif", "sub/deep.png"}


def test_inventory_lists_every_file_as_image_reject_or_skipped(tmp_path):
    from catalog_intel.settings import load_config

    files = _odd_folder(tmp_path)
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    inventory, rejects, skipped = build_inventory(str(tmp_path), load_config().run.image_extensions)
    assert set(inventory["image"]) == EXPECTED_ROWS | {"fake.png"}  # fake.png fails at decoding
    reasons = dict(zip(rejects["image"], rejects["reason"]))
    assert reasons["notes.txt"].startswith("not an image (extension .txt")
    assert reasons["dangling.jpg"].startswith("not a regular file")
    assert sorted(str(p.relative_to(tmp_path)) for p in map(type(tmp_path), skipped)) == [".DS_Store",
                                                                                         "sub/.hidden/thumb.jpg"]
    assert inventory.height + rejects.height + len(skipped) == len(files) + 1


@pytest.mark.parametrize("name", ["animated.gif", "scan.bmp", "print.tif", "phone.heic", "web.avif"])
def test_each_format_pillow_reads_decodes_to_rgb(tmp_path, name):
    files = _odd_folder(tmp_path)
    img = images.load_rgb(str(tmp_path / name), max_pixels=10**8)
    assert img.mode == "RGB" and img.size == (64, 80)
    if name == "animated.gif":
        assert img.getpixel((10, 10))[0] > 150  # the first frame (red), not the second (blue)
    assert len(files) == 11


def test_heic_without_pillow_heif_is_rejected_with_the_fix(tmp_path, monkeypatch):
    _odd_folder(tmp_path)
    monkeypatch.setattr(images, "_heif_ready", False)
    monkeypatch.setattr(Image, "OPEN", {k: v for k, v in Image.OPEN.items() if k not in ("HEIF", "AVIF")})
    with pytest.raises(images.ImageRejected, match="pip install pillow-heif"):
        images.load_rgb(str(tmp_path / "phone.heic"), max_pixels=10**8)


@pytest.mark.slow
def test_a_run_over_odd_inputs_accounts_for_every_file(prefect_server, tmp_path, config_file, cache_dir):
    src, out = tmp_path / "src", tmp_path / "out"
    files = _odd_folder(src)
    config_file.write_text(config_file.read_text() + "[run]\nmax_reject_share = 0.9\n")
    summary = run_catalog(src, out, config_file, cache_dir, no_llm=True)
    table = pl.read_parquet(out / "catalog.parquet")
    rejects = dict(list(csv.reader(open(out / "rejects.csv")))[1:])
    assert set(table["image"]) == EXPECTED_ROWS
    assert set(rejects) == {"notes.txt", "fake.png"}
    assert rejects["notes.txt"].startswith("not an image") and rejects["fake.png"].startswith("not an image")
    assert (summary["inputs"], summary["rows"], summary["rejects"], summary["skipped"]) == (len(files), 7, 2, 2)
    assert summary["inputs"] == summary["rows"] + summary["rejects"] + summary["skipped"]
    assert {"ingest", "enrich-shard", "validate", "export"} <= set(summary["phases"])  # time per phase
    assert all(seconds >= 0 for seconds in summary["phases"].values()) and summary["phases"]["enrich-shard"] > 0
