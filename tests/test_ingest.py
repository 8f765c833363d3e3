import io

import polars as pl
import pytest
from PIL import Image

from catalog_intel.errors import SourceError
from catalog_intel.io.filesystem import sha256_file
from catalog_intel.io.ingest import build_inventory

EXTS = [".jpg", ".jpeg", ".png", ".webp"]


def _jpeg(path, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), color).save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    return path


def test_folder_inventory_hashes_content_and_keeps_odd_names(tmp_path):
    names = ["plain.jpg", "with space.jpg", "comma,name.jpg", 'quote"d.jpg', "ünïcödé 👚.jpg", "sub/dir/deep.JPEG"]
    for i, n in enumerate(names):
        _jpeg(tmp_path / n, (i * 40, 10, 10))
    (tmp_path / "twin.jpg").write_bytes((tmp_path / "plain.jpg").read_bytes())
    (tmp_path / "notes.txt").write_text("not a photo")
    inv, rejects, skipped = build_inventory(str(tmp_path), EXTS)
    assert rejects["image"].to_list() == ["notes.txt"] and rejects["reason"][0].startswith("not an image")
    assert skipped == []
    assert sorted(inv["image"]) == sorted(names + ["twin.jpg"])
    row = inv.filter(pl.col("image") == "ünïcödé 👚.jpg").row(0, named=True)
    assert row["sha256"] == sha256_file(row["path"])
    shas = dict(zip(inv["image"], inv["sha256"]))
    assert shas["twin.jpg"] == shas["plain.jpg"] and inv["sha256"].n_unique() == len(names)


def test_manifest_rows_outside_root_or_missing_are_rejected(tmp_path):
    root = tmp_path / "catalog"
    _jpeg(root / "img" / "a.jpg", (255, 0, 0))
    _jpeg(root / "img" / "b.jpg", (0, 255, 0))
    _jpeg(tmp_path / "secret.jpg", (0, 0, 255))
    manifest = root / "manifest.csv"
    pl.DataFrame({
        "image_path": ["img/a.jpg", "img/b.jpg", "../secret.jpg", str(tmp_path / "secret.jpg"), "img/missing.jpg", ""],
        "product_id": ["P1", "P2", "P3", "P4", "P5", "P6"],
        "brand_note": ["x", "y", "z", "w", "v", "u"],
    }).write_csv(manifest)
    inv, rejects, _ = build_inventory(str(manifest), EXTS)
    assert inv["image"].to_list() == ["img/a.jpg", "img/b.jpg"]
    assert inv["product_id"].to_list() == ["P1", "P2"]
    assert inv["brand_note"].to_list() == ["x", "y"]  # catalog columns are carried along
    reasons = dict(zip(rejects["image"], rejects["reason"]))
    assert reasons["../secret.jpg"].startswith("path is outside the manifest's folder")
    assert reasons[str(tmp_path / "secret.jpg")].startswith("path is outside the manifest's folder")
    assert reasons["img/missing.jpg"] == "file does not exist"
    assert reasons[""] == "manifest row has an empty image path"


def test_parquet_manifest_and_unusable_sources(tmp_path):
    _jpeg(tmp_path / "a.jpg", (1, 2, 3))
    pl.DataFrame({"path": ["a.jpg"]}).write_parquet(tmp_path / "m.parquet")
    inv, _, _ = build_inventory(str(tmp_path / "m.parquet"), EXTS)
    assert inv["image"].to_list() == ["a.jpg"] and inv["product_id"].to_list() == [None]
    with pytest.raises(SourceError, match="not found"):
        build_inventory(str(tmp_path / "nope"), EXTS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no files"):
        build_inventory(str(tmp_path / "empty"), EXTS)
    pl.DataFrame({"sku": ["a.jpg"]}).write_csv(tmp_path / "bad.csv")
    with pytest.raises(SourceError, match="no image path column"):
        build_inventory(str(tmp_path / "bad.csv"), EXTS)


def test_folder_and_manifest_on_a_url_store(tmp_path):
    """memory:// stands for any fsspec store: the same code lists, hashes and checks containment."""
    from catalog_intel.io import filesystem

    root = "memory://shop/drop"
    filesystem.atomic_write_bytes(f"{root}/img/a.jpg", _jpeg(tmp_path / "a.jpg", (255, 0, 0)).read_bytes())
    filesystem.atomic_write_bytes(f"{root}/img/b.jpg", _jpeg(tmp_path / "b.jpg", (0, 255, 0)).read_bytes())
    filesystem.atomic_write_bytes(f"{root}/.hidden.jpg", b"x")
    filesystem.atomic_write_bytes("memory://shop/secret.jpg", b"x")
    inv, rejects, skipped = build_inventory(root, EXTS)
    assert inv["image"].to_list() == ["img/a.jpg", "img/b.jpg"] and rejects.height == 0 and len(skipped) == 1
    assert inv["sha256"][0] == filesystem.sha256_file(inv["path"][0]) == sha256_file(str(tmp_path / "a.jpg"))

    filesystem.write_csv(pl.DataFrame({"image_path": ["img/a.jpg", "../secret.jpg", "memory://shop/secret.jpg",
                                                   "img/missing.jpg"]}), f"{root}/manifest.csv")
    inv, rejects, _ = build_inventory(f"{root}/manifest.csv", EXTS)
    assert inv["image"].to_list() == ["img/a.jpg"]
    reasons = dict(zip(rejects["image"], rejects["reason"]))
    assert reasons["../secret.jpg"].startswith("path is outside") and reasons["memory://shop/secret.jpg"].startswith("path is outside")
    assert reasons["img/missing.jpg"] == "file does not exist"
