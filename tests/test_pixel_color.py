"""Tests for catalog_intel.inference.pixel_color (colour from pixels)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from catalog_intel.inference.pixel_color import PALETTE, dominant_color, dominant_color_file

HM_TOPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "hm-tops"

W, H = 240, 360


def _tshirt(draw: ImageDraw.ImageDraw, fill) -> None:
    """A flat-laid T-shirt silhouette (body, sleeves, neck cut-out)."""
    body = [(70, 60), (105, 45), (135, 45), (170, 60), (215, 110), (190, 140), (172, 122),
            (172, 320), (68, 320), (68, 122), (50, 140), (25, 110)]
    draw.polygon(body, fill=fill)


def packshot(rgb, background=(250, 250, 250), seed: int = 0) -> Image.Image:
    """Synthetic catalog packshot: garment with soft shading and fabric noise on a
    slightly vignetted studio sweep."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r2 = ((xx - W / 2) / W) ** 2 + ((yy - H / 2) / H) ** 2
    bg = np.asarray(background, np.float32)[None, None, :] * (1.0 - 0.12 * r2)[..., None]

    mask_img = Image.new("L", (W, H), 0)
    _tshirt(ImageDraw.Draw(mask_img), 255)
    mask_img = mask_img.filter(ImageFilter.GaussianBlur(1.0))
    mask = np.asarray(mask_img, np.float32)[..., None] / 255.0

    shade = 1.0 - 0.08 * (yy / H)[..., None] + 0.04 * np.sin(xx / 9.0)[..., None]  # folds
    garment = np.asarray(rgb, np.float32)[None, None, :] * shade
    garment = garment + rng.normal(0.0, 3.0, garment.shape).astype(np.float32)
    out = bg * (1.0 - mask) + garment * mask
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")


SYNTHETIC = [
    ((20, 20, 22), (250, 250, 250), "black"),
    ((248, 248, 246), (214, 214, 214), "white"),  # white garments are shot on light grey
    ((252, 252, 250), (243, 243, 243), "white"),  # ... or on a near-white sweep
    ((128, 128, 130), (250, 250, 250), "grey"),
    ((215, 195, 160), (250, 250, 250), "beige"),
    ((110, 65, 35), (250, 250, 250), "brown"),
    ((190, 25, 35), (250, 250, 250), "red"),
    ((240, 160, 185), (250, 250, 250), "pink"),
    ((240, 120, 40), (250, 250, 250), "orange"),
    ((250, 215, 40), (250, 250, 250), "yellow"),
    ((30, 130, 60), (250, 250, 250), "green"),
    ((0, 180, 180), (250, 250, 250), "turquoise"),
    ((40, 90, 190), (250, 250, 250), "blue"),
    ((25, 35, 80), (250, 250, 250), "navy"),
    ((120, 60, 150), (250, 250, 250), "purple"),
]


@pytest.mark.parametrize("rgb,background,expected", SYNTHETIC, ids=[e for _, _, e in SYNTHETIC])
def test_synthetic_packshots(rgb, background, expected):
    name, conf = dominant_color(packshot(rgb, background))
    assert name == expected
    assert 0.0 <= conf <= 1.0


def test_palette_covers_vocabulary():
    for name in ("black", "white", "grey", "beige", "brown", "red", "pink", "orange", "yellow",
                 "green", "turquoise", "blue", "navy", "purple"):
        assert name in PALETTE


def test_deterministic():
    img = packshot((60, 110, 170), seed=3)
    assert dominant_color(img) == dominant_color(img.copy())
    assert dominant_color(img) == dominant_color(packshot((60, 110, 170), seed=3))


def test_real_photos_get_their_labelled_colour_every_time():
    """The first four labelled hm-tops photos (file order): the rule names each one's human label."""
    if not HM_TOPS.is_dir():
        pytest.skip(f"hm-tops data not present at {HM_TOPS}")
    with (HM_TOPS / "labels.csv").open(newline="", encoding="utf-8") as fh:
        rows = sorted((r for r in csv.DictReader(fh) if (r.get("color") or "").strip()), key=lambda r: r["file"])[:4]
    assert [r["color"] for r in rows] == ["grey", "grey", "white", "white"]
    for r in rows:
        name, confidence = dominant_color_file(str(HM_TOPS / r["file"]))
        assert name == r["color"] and 0.5 < confidence <= 1.0, (r["file"], name, confidence)
        assert dominant_color_file(str(HM_TOPS / r["file"])) == (name, confidence)


def test_solid_garment_is_confident_and_print_less_so():
    solid = packshot((190, 25, 35))
    _, conf_solid = dominant_color(solid)
    # same garment, left half black: two colours share the garment
    arr = np.asarray(solid).copy()
    garment = arr.sum(-1) < 600
    left = np.zeros_like(garment)
    left[:, : W // 2] = True
    arr[garment & left] = (20, 20, 20)
    _, conf_split = dominant_color(Image.fromarray(arr))
    assert conf_solid > 0.7
    assert conf_split < conf_solid


def test_vocabulary_restricts_output():
    navy = packshot((25, 35, 80))
    assert dominant_color(navy)[0] == "navy"
    assert dominant_color(navy, vocabulary=["black", "white", "blue", "red"])[0] == "blue"
    with pytest.raises(ValueError):
        dominant_color(navy, vocabulary=["multicolor"])


def test_custom_palette():
    palette = {"warm": (200, 60, 50), "cool": (50, 70, 200)}
    assert dominant_color(packshot((190, 25, 35)), palette=palette)[0] == "warm"
    assert dominant_color(packshot((40, 90, 190)), palette=palette)[0] == "cool"


def test_file_with_alpha_and_exif(tmp_path):
    # RGBA with a transparent background: composited on white
    rgba = packshot((30, 130, 60)).convert("RGBA")
    a = np.asarray(rgba).copy()
    a[..., 3] = np.where(np.asarray(packshot((30, 130, 60))).sum(-1) > 700, 0, 255)
    p = tmp_path / "g.png"
    Image.fromarray(a, "RGBA").save(p)
    assert dominant_color_file(str(p))[0] == "green"

    # JPEG stored sideways with an EXIF orientation tag
    img = packshot((190, 25, 35)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 CW to display
    q = tmp_path / "r.jpg"
    img.save(q, quality=90, exif=exif)
    assert dominant_color_file(str(q))[0] == "red"


def test_grayscale_and_small_images():
    grey_img = packshot((20, 20, 22)).convert("L")
    assert dominant_color(grey_img)[0] == "black"
    tiny = Image.new("RGB", (6, 6), (190, 25, 35))
    assert dominant_color(tiny)[0] == "red"


# -- real labelled data ------------------------------------------------------------

# Measured on this fixed 60-row sample: 50/60 = 0.833 (all 945 labelled rows: ~0.79 with
# bench/eval_pixel_color.py).  The floor (47/60) sits a few points below the
# sample's measured value so that a regression fails without being flaky.
HM_SAMPLE_FLOOR = 0.78


def _hm_sample(n: int = 60) -> list[dict[str, str]]:
    with (HM_TOPS / "labels.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if (r.get("color") or "").strip()]
    rows.sort(key=lambda r: r["file"])
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]  # evenly spaced: fixed, deterministic


def test_hm_tops_accuracy_floor():
    if not HM_TOPS.is_dir():
        pytest.skip(f"hm-tops data not present at {HM_TOPS}")
    with (HM_TOPS / "labels.csv").open(newline="", encoding="utf-8") as fh:
        label_names = {r["color"].strip() for r in csv.DictReader(fh) if (r.get("color") or "").strip()}
    vocab = [n for n in PALETTE if n in label_names]  # the dataset's label space (no navy)
    sample = _hm_sample()
    hits = [dominant_color_file(str(HM_TOPS / r["file"]), vocabulary=vocab)[0] == r["color"].strip()
            for r in sample]
    acc = sum(hits) / len(hits)
    assert acc >= HM_SAMPLE_FLOOR, f"accuracy {acc:.3f} on {len(hits)} hm-tops rows < floor {HM_SAMPLE_FLOOR}"
