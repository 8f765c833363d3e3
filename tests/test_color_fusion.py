import polars as pl
import pytest

from catalog_intel.inference.color_fusion import fuse_color, pixel_colors
from catalog_intel.io.synthetic import draw_top
from catalog_intel.settings import load_config


def _attrs():
    # CLIP's view of four products: (top value, confidence)
    return pl.DataFrame({
        "sha256": ["agree", "pixels-sure", "pixels-unsure", "nobody-sure"],
        "color_raw": ["navy", "black", "red", "grey"],
        "color": ["navy", "black", "red", "unknown"],
        "color_confidence": [0.5, 0.3, 0.6, 0.1],
    })


PIXELS = pl.DataFrame({
    "sha256": ["agree", "pixels-sure", "pixels-unsure", "nobody-sure"],
    "color_pixels": ["navy", "white", "pink", "beige"],
    "color_pixels_confidence": [0.8, 0.9, 0.4, 0.2],
})


def test_ensemble_rule():
    out = fuse_color(_attrs(), PIXELS, load_config(None, {"color.policy": "ensemble"}))
    got = dict(zip(out["sha256"], zip(out["color"], out["color_confidence"].round(3))))
    assert got["agree"] == ("navy", 0.9)               # 1 - 0.5 * 0.2: agreement raises confidence
    assert got["pixels-sure"] == ("white", 0.9)         # disagreement, pixels trusted (>= 0.6)
    assert got["pixels-unsure"] == ("red", 0.6)         # pixels unsure, CLIP above its threshold
    assert got["nobody-sure"] == ("unknown", 0.1)
    assert out["color_clip"].to_list() == ["navy", "black", "red", "grey"]
    assert out["color_pixels"].to_list() == PIXELS["color_pixels"].to_list()


def test_pixels_and_clip_policies():
    pixels = fuse_color(_attrs(), PIXELS, load_config(None, {"color.policy": "pixels", "color.pixel_min_confidence": 0.3}))
    assert pixels["color"].to_list() == ["navy", "white", "pink", "unknown"]
    clip = fuse_color(_attrs(), PIXELS, load_config(None, {"color.policy": "clip"}))
    assert clip["color"].to_list() == ["navy", "black", "red", "unknown"]
    assert clip["color_pixels"].null_count() == 4


@pytest.mark.parametrize("color", ["red", "navy", "white", "green", "black", "yellow"])
def test_pixel_colors_on_synthetic_packshots(tmp_path, color):
    path = tmp_path / f"{color}.jpg"
    draw_top(color, "solid", "short sleeve", size=(400, 500), seed=3).save(path, quality=90)
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    items = pl.DataFrame({"sha256": ["a", "b"], "path": [str(path), str(tmp_path / "broken.jpg")]})
    out = pixel_colors(items, load_config())
    assert out["color_pixels"].to_list() == [color, None]
    assert out["color_pixels_confidence"][0] > 0.5
