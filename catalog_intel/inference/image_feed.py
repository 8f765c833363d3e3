"""One decode per image, as small as the work needs.

A decode worker opens each JPEG once with DCT scaling (``Image.draft``) to about the
model's input size (at most an eighth below it: an 800x1000 photo decodes at 1/4, 200x250,
and the bicubic resize that open_clip's preprocessing does anyway brings it up to 224);
the model's pixels, the pixel colour (from a <= 32 px box reduction) and the report's JPEG
thumbnail all come from that one image, so nothing decodes the photo again, in this run or
the next (the colour and the thumbnails are cached by content).

The model's pixels leave the worker as uint8 (a quarter of float32's bytes through the
queue, and pinned-memory friendly); the batch is normalised where the model runs."""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from catalog_intel.errors import ImageRejected
from catalog_intel.io.images import load_rgb
# Imported here, not in the decode threads: scipy's modules import each other in a cycle, and two
# threads importing them at once (a decode worker and the background Great Expectations import)
# get a partially initialised module (ImportError: cannot import name 'euclidean').
from catalog_intel.inference.pixel_color import dominant_color_small

STAGES = ("decode", "color", "thumbnails")
# Pixel colour is named on the decode a model of this input size (ViT-B-32's) gets, whatever the model.
COLOR_INPUT_SIZE = 224
# The DCT-scaled decode may land this far below the model's input size (then Resize scales it up):
# 1/4 of an 800x1000 photo is 200 px, against 224. Decoding at 1/2 instead costs about 1.5 ms more
# per image (a larger decode, and a 400->224 bicubic resize), half of #21's budget.
DRAFT_SLACK = 1 / 8
# A picture at most this much longer than a thumbnail is stored as it is: the resize would cost more
# than the decode did (a 400x533 photo decodes at 200x267, the card thumbnail is 192), and the page shows
# it at its box size anyway.
_KEEP_AS_IS = 3 / 2
_JPEG_QUALITY = 82


@dataclass(frozen=True)
class FeedSpec:
    """What a decode worker makes of each image besides the model's pixels."""
    max_pixels: int
    thumb_sizes: tuple[int, ...] = ()                # longest sides of the JPEG thumbnails to keep
    color_vocabulary: tuple[str, ...] | None = None  # None: no pixel colour


@dataclass
class Fed:
    """One image's share of the work: model pixels (uint8 CHW on the fast path, else the
    preprocess's float tensor), pixel colour, thumbnails, and the CPU seconds of each stage."""
    pixels: object
    color: tuple[str, float] | None = None
    thumbs: dict[int, bytes] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)


def draft_side(size: int) -> int:
    """The smallest short side a decode for a model of input `size` may have."""
    return math.ceil(size * (1 - DRAFT_SLACK))


def fast_preprocess_size(preprocess) -> int | None:
    """The square input size when `preprocess` is open_clip's eval pipeline (bicubic Resize of the
    short side to S, CenterCrop S, RGB, ToTensor, Normalize), which this module reproduces on PIL
    uint8 images; None for anything else (the preprocess then runs as it is)."""
    steps = getattr(preprocess, "transforms", None)
    if not steps:
        return None
    names = [type(t).__name__ for t in steps]
    if names[:2] != ["Resize", "CenterCrop"] or names[-1] != "Normalize" or \
            not set(names[2:-1]) <= {"MaybeConvertMode", "MaybeToTensor", "ToTensor"}:
        return None
    resize, crop = steps[0], steps[1]
    size = resize.size if isinstance(resize.size, int) else (resize.size[0] if len(resize.size) == 1 else None)
    crop_size = tuple(crop.size)
    if size is None or crop_size != (size, size) or getattr(resize, "max_size", None) or \
            str(resize.interpolation).split(".")[-1].lower() != "bicubic":
        return None
    return int(size)


def resize_short(img: Image.Image, size: int) -> Image.Image:
    """torchvision's Resize(size) on a PIL image: the short side to `size`, bicubic."""
    w, h = img.size
    short, long = min(w, h), max(w, h)
    if short == size:
        return img
    new_long = int(size * long / short)
    return img.resize((size, new_long) if w <= h else (new_long, size), Image.Resampling.BICUBIC)


def center_crop_uint8(img: Image.Image, size: int) -> np.ndarray:
    """torchvision's CenterCrop(size) as a uint8 HxWx3 array (the image is at least `size` square)."""
    w, h = img.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return np.asarray(img.crop((left, top, left + size, top + size)))


def normalize_batch(pixels, preprocess):
    """uint8 NxCxHxW (on any device) -> the float batch open_clip's ToTensor + Normalize would give."""
    norm = preprocess.transforms[-1]
    return norm(pixels.float().div_(255.0))


def _thumbnails(img: Image.Image, sizes: tuple[int, ...]) -> dict[int, bytes]:
    """JPEG bytes for each longest side of `sizes`, from the decoded image, largest first, each made from
    the one before: a picture at most _KEEP_AS_IS times a size (or smaller than it: the decode has no more
    detail to give) is kept as it is, else box-reduced by a whole factor and, if still over, resized. Sizes
    that come to the same picture share one encode."""
    out: dict[int, bytes] = {}
    made: dict[tuple[int, int], bytes] = {}
    src = img
    for size in sorted(sizes, reverse=True):
        if max(src.size) > size * _KEEP_AS_IS:
            factor = max(src.size) // size
            src = src.reduce(factor) if factor > 1 else src.copy()
            if max(src.size) > size * _KEEP_AS_IS:
                src.thumbnail((size, size), Image.Resampling.BILINEAR)
        if src.size not in made:
            buf = io.BytesIO()
            src.save(buf, format="JPEG", quality=_JPEG_QUALITY)
            made[src.size] = buf.getvalue()
        out[size] = made[src.size]
    return out


def feed_image(path: str, preprocess, input_size: int | None, min_side: int, spec: FeedSpec,
               model_pixels: bool = True) -> Fed:
    """Decode `path` once and make all of its work. Raises ImageRejected (the decode's reasons).

    `input_size`: the fast path's square size (fast_preprocess_size), or None to run `preprocess`;
    `min_side`: the model's input size (the decode may be up to DRAFT_SLACK below it);
    `model_pixels` False: the colour and thumbnails only (Fed.pixels None)."""
    cpu: dict[str, float] = {}
    t0 = time.thread_time()
    side = draft_side(min_side)
    if spec.color_vocabulary is not None:  # the colour is the same whichever model's decode feeds it
        side = max(side, draft_side(COLOR_INPUT_SIZE))
    img = load_rgb(path, spec.max_pixels, side)
    pixels = None
    if input_size and model_pixels:
        import torch

        pixels = torch.from_numpy(center_crop_uint8(resize_short(img, input_size), input_size).copy()).permute(2, 0, 1)
    elif model_pixels:
        pixels = preprocess(img)
    t1 = time.thread_time()
    cpu["decode"] = t1 - t0
    color = None
    if spec.color_vocabulary is not None:
        try:
            color = dominant_color_small(img, vocabulary=spec.color_vocabulary)
        except ValueError:
            color = None
    t2 = time.thread_time()
    cpu["color"] = t2 - t1
    thumbs = _thumbnails(img, spec.thumb_sizes) if spec.thumb_sizes else {}
    cpu["thumbnails"] = time.thread_time() - t2
    return Fed(pixels, color, thumbs, cpu)


def feed_or_reason(path: str, preprocess, input_size: int | None, min_side: int, spec: FeedSpec,
                   model_pixels: bool = True) -> Fed | str:
    """feed_image, or the reason the image is rejected."""
    try:
        return feed_image(path, preprocess, input_size, min_side, spec, model_pixels)
    except ImageRejected as exc:
        return str(exc)
