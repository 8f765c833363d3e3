"""Every kind of bad or odd input: a clear reason, or a correct upright RGB image."""

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from catalog_intel.errors import ImageRejected
from catalog_intel.io.images import load_rgb

LIMIT = 89_478_485


def _jpeg(size=(64, 48), color=(200, 30, 30), mode="RGB", **save) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "JPEG", **save)
    return buf.getvalue()


def _write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("notes.jpg", b"just some text, not an image\n" * 20, "not an image"),
        ("doc.png", b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF", "not an image"),
        ("cut.jpg", _jpeg((400, 300))[:900], "truncated"),
    ],
)
def test_unusable_files_are_rejected_with_a_reason(tmp_path, name, data, reason):
    with pytest.raises(ImageRejected, match=reason):
        load_rgb(_write(tmp_path, name, data), LIMIT)


def test_corrupt_png_is_rejected(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 0, 255)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[60:80] = b"\x00" * 20  # inside IDAT: bad CRC / zlib stream
    with pytest.raises(ImageRejected, match="corrupt|truncated|not a readable"):
        load_rgb(_write(tmp_path, "bad.png", bytes(data)), LIMIT)


def test_decompression_bomb_header_is_rejected_without_decoding(tmp_path):
    # A valid PNG header claiming 40000x40000 pixels, with almost no data.
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    with pytest.raises(ImageRejected, match="bomb"):
        load_rgb(_write(tmp_path, "bomb.png", png), LIMIT)
    with pytest.raises(ImageRejected, match="over the limit of 1,000"):
        load_rgb(_write(tmp_path, "ok.jpg", _jpeg((100, 100))), max_pixels=1000)


def test_cmyk_jpeg_and_16_bit_png_are_converted(tmp_path):
    img = load_rgb(_write(tmp_path, "cmyk.jpg", _jpeg(mode="CMYK", color=(0, 255, 255, 0))), LIMIT)
    assert img.mode == "RGB"
    r, g, b = img.getpixel((10, 10))
    assert r > 200 and g < 60 and b < 60  # cyan-free, full magenta+yellow = red
    buf = io.BytesIO()
    Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)).save(buf, "PNG")
    grey = load_rgb(_write(tmp_path, "deep.png", buf.getvalue()), LIMIT)
    assert grey.mode == "RGB" and 150 < grey.getpixel((5, 5))[0] < 160  # 40000/65535*255 ~ 155, not clipped


def test_alpha_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    img = load_rgb(_write(tmp_path, "alpha.png", buf.getvalue()), LIMIT)
    assert img.getpixel((5, 5)) == (255, 255, 255)
    assert img.getpixel((0, 0)) == (255, 0, 0)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (80, 40), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    out = load_rgb(_write(tmp_path, "rotated.jpg", buf.getvalue()), LIMIT)
    assert out.size == (40, 80)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_image_gives_its_first_frame(tmp_path, fmt):
    frames = [Image.new("RGB", (16, 16), c) for c in [(0, 255, 0), (255, 0, 0)]]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    assert Image.open(io.BytesIO(buf.getvalue())).n_frames == 2
    out = load_rgb(_write(tmp_path, f"anim.{fmt.lower()}", buf.getvalue()), LIMIT)
    r, g, b = out.getpixel((8, 8))
    assert g > 200 and r < 50


def test_unreadable_file(tmp_path):
    path = _write(tmp_path, "secret.jpg", _jpeg())
    os.chmod(path, 0)
    if os.geteuid() != 0:
        with pytest.raises(ImageRejected, match="permission denied"):
            load_rgb(path, LIMIT)
        return
    # root reads anything: open it from a forked child that drops to "nobody".
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        try:
            os.setuid(65534)
            load_rgb(path, LIMIT)
            message = "no error"
        except ImageRejected as exc:
            message = str(exc)
        except BaseException as exc:  # report, never fall through into pytest
            message = repr(exc)
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    message = os.read(read, 4096).decode()
    assert "permission denied" in message, message


def test_draft_keeps_at_least_the_requested_size(tmp_path):
    out = load_rgb(_write(tmp_path, "big.jpg", _jpeg((1600, 2000))), LIMIT, min_side=224)
    assert min(out.size) >= 224 and max(out.size) <= 1000  # decoded at 1/4 or 1/2 scale, not full size
