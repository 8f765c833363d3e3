"""One decode per image (inference/image_feed.py): the model's pixels, the pixel colour and the
report's thumbnails from one small decode, cached so a re-run decodes nothing."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from catalog_intel.inference.image_feed import (FeedSpec, draft_side, fast_preprocess_size, feed_image,
                                                normalize_batch)
from catalog_intel.inference.pixel_color import COLOR_NAMES, dominant_color_small, name_lab, name_lab_array
from catalog_intel.io.synthetic import write_catalog
from conftest import run_catalog
from test_pixel_color import SYNTHETIC, packshot

LIMIT = 10**8
CC0_TOPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "cc0-tops" / "images"


class Opens:
    """Counts PIL decodes: Image.open calls and the sizes images were loaded at."""

    def __init__(self, monkeypatch):
        self.opened, self.loaded = 0, []
        from PIL import ImageFile

        real_open, real_load = Image.open, ImageFile.ImageFile.load
        counter = self

        def counting_open(*args, **kwargs):
            counter.opened += 1
            return real_open(*args, **kwargs)

        def counting_load(img):
            if getattr(img, "fp", None) is not None and getattr(img, "format", None) == "JPEG":
                counter.loaded.append(img.size)
            return real_load(img)

        monkeypatch.setattr(Image, "open", counting_open)
        monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)


@pytest.fixture(scope="module")
def clip(tiny_clip):
    from catalog_intel.settings import load_config
    from catalog_intel.inference.clip_model import load_clip

    config = load_config(None, tiny_clip)
    return load_clip(config.clip, config.paths.cache_path)


def test_fast_pixels_equal_open_clip_preprocess(clip, tmp_path):
    from catalog_intel.io.images import load_rgb

    size = fast_preprocess_size(clip.preprocess)
    assert size == clip.image_size
    for path in write_catalog(tmp_path, 3, size=(300, 410)):
        fed = feed_image(str(path), clip.preprocess, size, size, FeedSpec(LIMIT))
        expected = clip.preprocess(load_rgb(str(path), LIMIT, size))
        assert fed.pixels.dtype.is_floating_point is False
        assert np.array_equal(normalize_batch(fed.pixels[None], clip.preprocess)[0].numpy(), expected.numpy())


def test_model_pixels_equal_open_clip_on_a_real_photo_decoded_below_the_model_size():
    """A 400x533 phone photo decodes at 1/2 (200x267, within DRAFT_SLACK of 224): the model's uint8 pixels are
    exactly open_clip's ViT-B-32 preprocessing (bicubic up to 224, centre crop) of that decode."""
    from open_clip.transform import image_transform

    from catalog_intel.io.images import load_rgb

    photos = sorted(CC0_TOPS.glob("*.jpg"))[:4] if CC0_TOPS.is_dir() else []
    if not photos:
        pytest.skip(f"cc0-tops data not present at {CC0_TOPS}")
    preprocess = image_transform(224, is_train=False)
    assert fast_preprocess_size(preprocess) == 224 and draft_side(224) == 196
    for path in photos:
        decoded = load_rgb(str(path), LIMIT, draft_side(224))
        assert 196 <= min(decoded.size) < 224 and min(Image.open(path).size) == 2 * min(decoded.size)
        fed = feed_image(str(path), preprocess, 224, 224, FeedSpec(LIMIT))
        assert tuple(fed.pixels.shape) == (3, 224, 224)
        assert np.array_equal(normalize_batch(fed.pixels[None], preprocess)[0].numpy(), preprocess(decoded).numpy())


def test_thumbnails_share_one_encode_when_the_decode_is_below_both_sizes(tmp_path):
    """The decode (200x250 for 800x1000) is smaller than the product page's size and within 3/2 of the card's:
    both get the decode as it is, encoded once; a larger decode is reduced to each size (within 3/2 of it)."""
    small = write_catalog(tmp_path / "a", 1, size=(800, 1000))[0]
    fed = feed_image(str(small), None, 224, 224, FeedSpec(LIMIT, (192, 384)), model_pixels=False)
    assert fed.thumbs[192] is fed.thumbs[384] and Image.open(io.BytesIO(fed.thumbs[192])).size == (200, 250)
    big = write_catalog(tmp_path / "b", 1, size=(1800, 2400))[0]  # decodes at 1/8: 225x300
    fed = feed_image(str(big), None, 224, 224, FeedSpec(LIMIT, (96, 384)), model_pixels=False)
    assert Image.open(io.BytesIO(fed.thumbs[384])).size == (225, 300)
    assert Image.open(io.BytesIO(fed.thumbs[96])).size == (75, 100)  # 225x300 box-reduced by 3


def test_colour_tables_name_like_the_rule():
    """The sRGB -> Lab -> name lookup tables give the rule's own answer for each quantised colour in each
    background band (the band boundaries are the rule's white_dl and brown_dl)."""
    from catalog_intel.inference.pixel_color import RULE, _LUT_BITS, _luts

    lut_lab, lut_names = _luts()
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 1 << (3 * _LUT_BITS), 4000)
    lab = lut_lab[keys]
    for bg in (96.0, 82.0, 60.0):
        dl = lab[:, 0] - bg
        band = (dl >= RULE["brown_dl"]).astype(int) + (dl > RULE["white_dl"])
        assert lut_names[band, keys].tolist() == name_lab_array(lab, bg).tolist()
    white, black = lut_lab[(1 << (3 * _LUT_BITS)) - 1], lut_lab[0]
    assert white[0] > 99 and abs(white[1]) < 1.5 and black[0] < 1.5


# Not the white garment on a near-white sweep: both masks give up on it (a central box, differently drawn).
CLEAR = [c for c in SYNTHETIC if c[1] != (243, 243, 243)]


@pytest.mark.parametrize("rgb,background,expected", CLEAR, ids=[e for _, _, e in CLEAR])
def test_small_garment_mask_finds_the_garment_the_full_mask_finds(rgb, background, expected):
    """The fast mask (no connectivity steps) against the full one on packshots with a separable garment."""
    from catalog_intel.inference.pixel_color import _garment_mask, _garment_mask_small, _lab_array, small_thumbnail

    lab = _lab_array(small_thumbnail(packshot(rgb, background)))
    full, full_bg = _garment_mask(lab)
    fast, fast_bg = _garment_mask_small(lab)
    assert (full & fast).sum() / (full | fast).sum() >= 0.9
    assert abs(full_bg - fast_bg) < 1.0


def test_each_image_is_decoded_once_and_small(clip, tmp_path, monkeypatch):
    from catalog_intel.inference.embedding import compute_embeddings

    paths = [str(p) for p in write_catalog(tmp_path, 5, size=(800, 1000))]
    opens = Opens(monkeypatch)
    feds = {}
    timings: dict = {}
    spec = FeedSpec(LIMIT, (48, 96), ("red", "blue", "black", "white"))
    vectors, reasons = compute_embeddings(paths, clip, 2, 0, LIMIT, feed=spec, timings=timings,
                                          on_fed=lambda rows, fs: feds.update(zip(rows, fs)))
    assert reasons == [""] * 5 and vectors.shape[0] == 5
    assert opens.opened == 5                       # one open per image, nothing decodes again
    # DCT-scaled draft: the colour wants ViT-B-32's decode (at most 1/8 below 224 px), so 800x1000 decodes at 1/4
    assert opens.loaded == [(200, 250)] * 5
    assert sorted(feds) == list(range(5))
    for fed in feds.values():
        assert fed.color is not None and fed.color[0] in spec.color_vocabulary
        for size in (48, 96):
            thumb = Image.open(io.BytesIO(fed.thumbs[size]))
            assert size <= max(thumb.size) <= size * 3 / 2
    assert timings["images"] == 5
    assert all(timings["cpu_s"][stage] > 0 for stage in ("decode", "color", "thumbnails", "model"))


def test_pixel_colour_is_the_same_from_any_models_decode(clip, tmp_path):
    """A shard whose embeddings were cached (a killed worker's) names the colour from the colour-only
    decode; it must answer what the model-feeding decode answered, also for a model whose input is not 224."""
    from catalog_intel.inference.color_fusion import pixel_colors
    from catalog_intel.settings import load_config

    config = load_config(None)
    vocabulary = tuple(config.attributes["color"].values)
    paths = [str(p) for p in write_catalog(tmp_path, 6, size=(360, 540))]
    size = fast_preprocess_size(clip.preprocess)
    assert size != 224  # the tiny model: the decodes differ in size
    fed = [feed_image(p, clip.preprocess, size, size, FeedSpec(LIMIT, (), vocabulary)).color for p in paths]
    alone = pixel_colors(pl.DataFrame({"sha256": [str(i) for i in range(6)], "path": paths}), config)
    assert all(c is not None for c in fed)
    assert list(zip(alone["color_pixels"], alone["color_pixels_confidence"])) == fed


def test_rule_vectorised_names_like_the_scalar_rule():
    rng = np.random.default_rng(0)
    lab = np.column_stack([rng.uniform(0, 100, 5000), rng.uniform(-90, 90, 5000), rng.uniform(-90, 90, 5000)])
    for bg in (None, 82.0):
        expected = [COLOR_NAMES.index(name_lab(p, bg)) for p in lab]
        assert name_lab_array(lab, bg).tolist() == expected


@pytest.mark.parametrize("rgb,background,expected", SYNTHETIC, ids=[e for _, _, e in SYNTHETIC])
def test_small_thumbnail_colour_of_synthetic_packshots(rgb, background, expected):
    name, conf = dominant_color_small(packshot(rgb, background))
    assert name == expected
    assert 0.5 <= conf <= 1.0


def test_a_rerun_decodes_nothing_and_the_report_uses_the_cached_thumbnails(prefect_server, tmp_path, config_file,
                                                                            monkeypatch):
    from catalog_intel.settings import load_config
    from catalog_intel.io.thumbnails import cached_thumbnails, report_thumb_sizes, thumbnail_store

    src, cache = tmp_path / "src", tmp_path / "cache"
    write_catalog(src, 4, size=(400, 500))
    first = run_catalog(src, tmp_path / "out1", config_file, cache, no_llm=True)
    cpu = first["cpu_ms_per_image"]
    assert all(cpu[stage] > 0 for stage in ("decode", "color", "thumbnails", "model"))
    assert cpu["outside"] == pytest.approx(cpu["decode"] + cpu["color"] + cpu["thumbnails"], abs=0.02)
    assert first["fixed_s"]["before_first_shard"] > 0 and first["fixed_s"]["after_last_shard"] > 0

    opens = Opens(monkeypatch)
    second = run_catalog(src, tmp_path / "out2", config_file, cache, no_llm=True)
    assert second["embeddings_cached"] == 4 and second["rows"] == 4
    assert opens.opened == 0
    assert second["cpu_ms_per_image"] == {}  # nothing decoded: no per-image figures
    sizes = report_thumb_sizes(load_config(str(config_file)))
    shas = pl.read_parquet(tmp_path / "out2" / "catalog.parquet")["sha256"].to_list()
    cached = cached_thumbnails(thumbnail_store(cache, sizes), shas, sizes[0])
    thumbs = sorted((tmp_path / "out2" / "report" / "thumbs").glob("*.jpg"))
    assert len(thumbs) == 4 and {t.read_bytes() for t in thumbs} == set(cached.values())


def test_run_colour_on_labelled_hm_tops_keeps_the_floor():
    """The colour a run computes (pixel_colors: the model-size decode, then v2) on the same 60 labelled
    H&M photos as test_pixel_color's v1 floor: no more than about a point below it."""
    from catalog_intel.settings import load_config
    from catalog_intel.inference.color_fusion import pixel_colors
    from catalog_intel.inference.pixel_color import PALETTE
    from test_pixel_color import HM_SAMPLE_FLOOR, HM_TOPS, _hm_sample

    if not HM_TOPS.is_dir():
        pytest.skip(f"hm-tops data not present at {HM_TOPS}")
    sample = _hm_sample()
    config = load_config(None, {"attributes.color.values": [n for n in PALETTE if n != "navy"]})
    items = pl.DataFrame({"sha256": [r["file"] for r in sample], "path": [str(HM_TOPS / r["file"]) for r in sample]})
    got = dict(pixel_colors(items, config).select("sha256", "color_pixels").iter_rows())
    hits = sum(got[r["file"]] == r["color"].strip() for r in sample)
    assert hits / len(sample) >= HM_SAMPLE_FLOOR, f"{hits}/{len(sample)}"


def test_decode_threads_import_nothing():
    """A decode worker thread must not import modules (scipy's import cycle breaks when two threads
    import it at once): everything feed_image needs is imported with the module."""
    import subprocess
    import sys

    code = ("import sys, catalog_intel.inference.image_feed; "
            "print(all(m in sys.modules for m in ('catalog_intel.inference.pixel_color', 'scipy.ndimage')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
