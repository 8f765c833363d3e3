"""Decoding product photos robustly: every failure becomes an ImageRejected
with a reason a catalog manager can act on, never a crash."""

from __future__ import annotations

import io
import logging
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from catalog_intel.errors import ImageRejected
from catalog_intel.io.filesystem import read_bytes

log = logging.getLogger(__name__)

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_heif_ready: bool | None = None


def _enable_heif() -> bool:
    """Register pillow-heif's HEIC/HEIF opener once per process; False if it is not installed."""
    global _heif_ready
    if _heif_ready is None:
        try:
            from pillow_heif import register_heif_opener

            register_heif_opener()
            _heif_ready = True
        except ImportError:
            _heif_ready = False
    return _heif_ready


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


def _flatten(img: Image.Image) -> Image.Image:
    """Any mode -> 8-bit RGB; transparency is composited on white (packshot background)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping to white.
        img = img.point(lambda v: v / 256).convert("L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "PA"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB") if img.mode != "RGB" else img


def load_rgb(path: str, max_pixels: int, min_side: int | None = None) -> Image.Image:
    """Open an image file (local path or URL) as upright 8-bit RGB.

    `min_side`: the caller will downscale to about this size, so JPEG decoding
    may use DCT scaling (Image.draft), ~4x faster, never going below it.
    Animated images give their first frame. Raises ImageRejected."""
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        raise ImageRejected("file does not exist (removed since the run listed it?)") from None
    except PermissionError:
        raise ImageRejected("file is not readable (permission denied): fix its permissions") from None
    except OSError as exc:
        raise ImageRejected(f"file cannot be read: {exc.strerror or exc}") from None
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    return decode_rgb(data, max_pixels, min_side)


def decode_rgb(data: bytes, max_pixels: int, min_side: int | None = None) -> Image.Image:
    if _is_heif(data) and not _enable_heif():
        raise ImageRejected("HEIC/HEIF photo, but pillow-heif is not installed: `pip install pillow-heif` "
                            "(or convert the file to JPEG)")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageRejected("not an image (content is not a supported image format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"decompression-bomb guard: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises assorted errors on damaged headers
        raise _rejected(exc, "not a readable image") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageRejected("image has no pixels")
    if width * height > max_pixels:
        raise ImageRejected(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
            "(decompression-bomb guard; raise run.max_image_pixels if the file is genuine)"
        )
    try:
        if img.format == "JPEG" and min_side:
            # Keep both sides >= min_side after EXIF rotation (which may swap them).
            img.draft("RGB", (min_side, min_side))
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
        ImageOps.exif_transpose(img, in_place=True)  # no copy when there is nothing to turn
        return _flatten(img)
    except Image.DecompressionBombWarning as exc:
        raise ImageRejected(f"decompression-bomb guard: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - damaged files make Pillow's decoders raise IndexError, struct.error...
        message = str(exc)
        if "truncated" in message:
            raise ImageRejected("truncated image file (incomplete download or copy?)") from None
        raise _rejected(exc, "corrupt image data") from None


def _rejected(exc: Exception, what: str) -> ImageRejected:
    """One image's decoder error as a reject; the traceback goes to the debug log, so that a
    bug of ours that happens to raise here stays visible."""
    log.debug("decoder error (%s)", what, exc_info=exc)
    detail = str(exc) if isinstance(exc, (OSError, SyntaxError, ValueError)) else f"{type(exc).__name__}: {exc}"
    return ImageRejected(f"{what}: {detail}")
