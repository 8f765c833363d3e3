"""The embed stage's decode paths. The GPU path (raw JPEG bytes from the workers,
batched decode, preprocess on tensors) runs here on the CPU with torchvision's CPU
decoder: only nvjpeg itself is left for a machine with a GPU."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from catalog_intel.inference import embedding
from catalog_intel.inference.embedding import (apply_orientation, compute_embeddings, decode_jpegs,
                                               jpeg_header_orientation, preprocess_tensors, resolve_gpu_decode,
                                               tensor_preprocess_supported)
from catalog_intel.io.images import load_rgb
from catalog_intel.io.synthetic import draw_top, jpeg_with_comment

LIMIT = 89_478_485


def _frombytes(data: bytes):
    import torch

    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _packshot(size=(400, 500), orientation: int | None = None, quality=90) -> bytes:
    img = draw_top("red", "striped", "long sleeve", size, seed=3)
    buf = io.BytesIO()
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    else:
        img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def preprocess():
    import open_clip

    return open_clip.image_transform(224, is_train=False)


def test_tensor_preprocess_matches_the_pil_path(tmp_path, preprocess):
    assert tensor_preprocess_supported(preprocess)
    path = tmp_path / "p.jpg"
    path.write_bytes(_packshot())
    pil = preprocess(load_rgb(str(path), LIMIT, 224)).numpy()
    tensor = preprocess_tensors(decode_jpegs([_frombytes(path.read_bytes())], "cpu"), preprocess, "cpu")[0].numpy()
    assert tensor.shape == pil.shape == (3, 224, 224)
    # Different decoders and resamplers (DCT draft + PIL bicubic vs full decode + torch
    # bicubic): about one grey level apart on average (1/255/0.27 ~ 0.015 here).
    assert np.abs(tensor - pil).mean() < 0.03


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_on_tensors_matches_pil(orientation):
    data = _packshot((120, 80), orientation)
    assert jpeg_header_orientation(data, LIMIT) == orientation
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)).convert("RGB"))).astype(np.int16)
    got = apply_orientation(decode_jpegs([_frombytes(data)], "cpu")[0], orientation).permute(1, 2, 0).numpy()
    assert got.shape == expected.shape
    assert np.abs(got.astype(np.int16) - expected).mean() < 1.0


def test_only_plain_jpegs_take_the_raw_path():
    cmyk = io.BytesIO()
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(cmyk, "JPEG")
    png = io.BytesIO()
    Image.new("RGB", (32, 32)).save(png, "PNG")
    grey = io.BytesIO()
    Image.new("L", (32, 32), 128).save(grey, "JPEG")
    assert jpeg_header_orientation(cmyk.getvalue(), LIMIT) is None
    assert jpeg_header_orientation(png.getvalue(), LIMIT) is None
    assert jpeg_header_orientation(b"\xff\xd8garbage", LIMIT) is None
    assert jpeg_header_orientation(b"", LIMIT) is None
    assert jpeg_header_orientation(_packshot((64, 64)), max_pixels=1000) is None  # bomb guard: CPU path rejects it
    assert jpeg_header_orientation(grey.getvalue(), LIMIT) == 1


def test_a_failing_item_does_not_fail_the_batch():
    """Each good item keeps its own pixels, in its place, around one that cannot be decoded."""
    first, second = _packshot((64, 80)), _packshot((48, 96), orientation=None, quality=70)
    out = decode_jpegs([_frombytes(first), _frombytes(first[:300]), _frombytes(second)], "cpu")
    assert out[1] is None
    for got, data in ((out[0], first), (out[2], second)):
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1).astype(int)
        assert tuple(got.shape) == expected.shape
        assert np.abs(got.numpy().astype(int) - expected).mean() < 2.0  # libjpeg vs libjpeg-turbo rounding
    together = decode_jpegs([_frombytes(first), _frombytes(second)], "cpu")
    assert all((a == b).all() for a, b in zip(together, (out[0], out[2])))


def test_gpu_decode_is_never_used_without_cuda(preprocess):
    for setting in ("auto", "on", "off"):
        assert resolve_gpu_decode(setting, "cpu", preprocess) is False


def _mixed_catalog(tmp_path) -> tuple[list[str], list[bool]]:
    """Plain, rotated, greyscale and commented JPEGs, a PNG, and broken files."""
    files = {
        "plain.jpg": _packshot((200, 250)),
        "rotated.jpg": _packshot((250, 200), orientation=6),
        "copy.jpg": jpeg_with_comment(_packshot((200, 250)), b"copy 2"),
        "truncated.jpg": _packshot((200, 250))[:2000],
        "empty.jpg": b"",
    }
    grey, png = io.BytesIO(), io.BytesIO()
    Image.new("L", (90, 120), 100).save(grey, "JPEG")
    draw_top("blue", "solid", "sleeveless", (200, 250), seed=1).save(png, "PNG")
    files["grey.jpg"], files["pack.png"] = grey.getvalue(), png.getvalue()
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    return paths, [name not in ("truncated.jpg", "empty.jpg") for name in files]


def test_raw_jpeg_path_embeds_like_the_pil_path(tmp_path, tiny_clip, monkeypatch):
    """The whole GPU-decode code path with the CPU standing in for the GPU."""
    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.settings import load_config

    cfg = load_config(None, {**tiny_clip, "clip.device": "cpu"})
    clip = load_clip(cfg.clip, cfg.paths.cache_path)
    paths, usable = _mixed_catalog(tmp_path)

    pil_vectors, pil_reasons = compute_embeddings(paths, clip, 3, 0, LIMIT, gpu_decode="on")  # CPU: PIL path
    monkeypatch.setattr(embedding, "resolve_gpu_decode", lambda *a: True)
    raw_vectors, raw_reasons = compute_embeddings(paths, clip, 3, 0, LIMIT)

    assert [not r for r in pil_reasons] == usable
    assert [not r for r in raw_reasons] == usable
    assert "truncated" in raw_reasons[paths.index(str(tmp_path / "truncated.jpg"))]
    assert "empty" in raw_reasons[paths.index(str(tmp_path / "empty.jpg"))]
    cos = (pil_vectors * raw_vectors).sum(axis=1)
    assert (cos[usable] > 0.98).all(), cos
    assert (raw_vectors[[not u for u in usable]] == 0).all()


def test_bf16_autocast_on_cpu_is_close_to_fp32(tmp_path, tiny_clip):
    from catalog_intel.inference.clip_model import load_clip, model_id
    from catalog_intel.settings import load_config

    cfg = load_config(None, {**tiny_clip, "clip.device": "cpu"})
    cfg16 = load_config(None, {**tiny_clip, "clip.device": "cpu", "clip.precision": "bf16"})
    assert model_id(cfg16.clip) == model_id(cfg.clip) + "+bf16"  # kept apart in the embedding cache
    clip = load_clip(cfg.clip, cfg.paths.cache_path)
    paths, usable = _mixed_catalog(tmp_path)
    fp32, _ = compute_embeddings(paths, clip, 4, 0, LIMIT)
    bf16, _ = compute_embeddings(paths, clip, 4, 0, LIMIT, precision="bf16")
    assert ((fp32 * bf16).sum(axis=1)[usable] > 0.98).all()


def test_decode_workers_and_threads_do_not_change_results(tmp_path, tiny_clip):
    import torch

    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.settings import load_config

    cfg = load_config(None, {**tiny_clip, "clip.device": "cpu"})
    clip = load_clip(cfg.clip, cfg.paths.cache_path)
    paths, _ = _mixed_catalog(tmp_path)
    threads = torch.get_num_threads()
    inline, reasons = compute_embeddings(paths, clip, 2, 0, LIMIT)
    try:
        workers, reasons2 = compute_embeddings(paths, clip, 2, 1, LIMIT, prefetch_batches=3, torch_threads=1)
        assert torch.get_num_threads() == 1  # a setting of the process (each Dask worker its own), not restored
    finally:
        torch.set_num_threads(threads)
    assert reasons == reasons2
    np.testing.assert_allclose(inline, workers, atol=1e-5)


def _embed_in_daemon(tiny_clip: dict, paths: list, queue) -> None:
    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.settings import load_config

    cfg = load_config(None, {**tiny_clip, "clip.device": "cpu"})
    try:
        queue.put(compute_embeddings(paths, load_clip(cfg.clip, cfg.paths.cache_path), 2, 2, LIMIT,
                                     prefetch_batches=2))
    except BaseException as exc:  # noqa: BLE001
        queue.put(repr(exc))


def test_decode_workers_inside_a_daemonic_process_use_threads(tmp_path, tiny_clip):
    """A Dask worker is a daemonic process: a DataLoader there cannot start decode workers
    ("daemonic processes are not allowed to have children"). Decoding falls back to threads."""
    import multiprocessing

    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.settings import load_config

    cfg = load_config(None, {**tiny_clip, "clip.device": "cpu"})
    paths, _ = _mixed_catalog(tmp_path)
    inline, reasons = compute_embeddings(paths, load_clip(cfg.clip, cfg.paths.cache_path), 2, 0, LIMIT)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_embed_in_daemon, args=(tiny_clip, paths, queue), daemon=True)
    proc.start()
    result = queue.get(timeout=240)
    proc.join(30)
    assert not isinstance(result, str), result
    vectors, daemon_reasons = result
    assert daemon_reasons == reasons and any(reasons) and not all(reasons)
    np.testing.assert_allclose(inline, vectors, atol=1e-5)


def test_catalog_copies_differ_in_bytes_only():
    import hashlib

    data = _packshot((64, 80))
    copy = jpeg_with_comment(data, b"catalog-intel bench copy 7")
    assert hashlib.sha256(copy).digest() != hashlib.sha256(data).digest()
    assert Image.open(io.BytesIO(copy)).info["comment"] == b"catalog-intel bench copy 7"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(copy))), np.asarray(Image.open(io.BytesIO(data))))
    np.testing.assert_array_equal(decode_jpegs([_frombytes(copy)], "cpu")[0].numpy(),
                                  decode_jpegs([_frombytes(data)], "cpu")[0].numpy())
    with pytest.raises(ValueError):
        jpeg_with_comment(b"\x89PNG", b"x")
