"""Image embeddings: batched open_clip forward with decoding in worker
processes, cached in a Parquet store keyed by (content sha256, model id).

CPU: worker processes decode with PIL, using JPEG DCT scaling (Image.draft) so
an 800x1000 photo decodes at 400x500, and run open_clip's preprocess; the main
process only runs the model, so decoding hides behind the forward.

GPU (`gpu_decode`): workers only read the bytes and the JPEG header (size,
EXIF orientation); the main process decodes the batch with nvjpeg
(torchvision.io.decode_jpeg on the GPU) and runs the same preprocess
transforms batched on GPU tensors. Anything nvjpeg cannot take (PNG, CMYK,
corrupt files) goes through the CPU path, which also gives the reject reasons.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import itertools
import multiprocessing
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from catalog_intel.errors import ImageRejected
from catalog_intel.inference.clip_model import LoadedClip
from catalog_intel.inference.image_feed import (Fed, FeedSpec, STAGES, fast_preprocess_size, feed_or_reason,
                                                normalize_batch)
from catalog_intel.inference.pixel_color import prepare_color_tables
from catalog_intel.io.filesystem import read_bytes
from catalog_intel.io.images import decode_rgb
from catalog_intel.io.layout import CacheLayout
from catalog_intel.io.parquet_store import ParquetStore

PRECISIONS = ("fp32", "bf16", "fp16")


def embedding_store(cache_root: Path, model_id: str) -> ParquetStore:
    return ParquetStore(CacheLayout(cache_root).embeddings(model_id), key="sha256")


def embeddings_frame(shas: list[str], vectors: np.ndarray, model_id: str) -> pl.DataFrame:
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    return pl.DataFrame(
        {
            "sha256": shas,
            "model_id": [model_id] * len(shas),
            "embedding": pl.Series(vectors.astype(np.float32, copy=False), dtype=pl.Array(pl.Float32, dim)),
        }
    )


class _DecodedImages:
    """Map-style dataset: path -> (index, model pixels | None, reason, raw JPEG | None, Fed | None).

    Each image is decoded once (image_feed.feed_image): the model's pixels (uint8 on the fast path),
    its pixel colour and thumbnails come from that decode. With `raw_jpeg`, plain JPEGs (RGB or
    greyscale) come back undecoded as (uint8 bytes tensor, EXIF orientation) for batched GPU decoding."""

    def __init__(self, paths: list[str], preprocess, min_side: int, feed: FeedSpec, raw_jpeg: bool = False):
        self.paths, self.preprocess, self.min_side, self.feed = paths, preprocess, min_side, feed
        self.input_size = fast_preprocess_size(preprocess)
        self.raw_jpeg = raw_jpeg

    def __len__(self) -> int:
        return len(self.paths)

    def _fed(self, i: int):
        fed = feed_or_reason(self.paths[i], self.preprocess, self.input_size, self.min_side, self.feed)
        if isinstance(fed, str):
            return i, None, fed, None, None
        return i, fed.pixels, "", None, fed

    def __getitem__(self, i: int):
        if not self.raw_jpeg:
            return self._fed(i)
        try:
            data = read_bytes(self.paths[i])
        except OSError:
            data = b""
        orientation = jpeg_header_orientation(data, self.feed.max_pixels)
        if orientation is not None:
            return i, None, "", (data, orientation), None
        return self._fed(i)  # not for nvjpeg: decode here (this also produces the reject reason)


def jpeg_header_orientation(data: bytes, max_pixels: int) -> int | None:
    """EXIF orientation (1-8) of a complete RGB or greyscale JPEG that a GPU
    decoder can take, from its header only; None for anything else (other
    formats, CMYK, over the pixel limit, no EOI marker at the end, unreadable),
    which takes the CPU path."""
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        return None  # not a JPEG, or cut short (or trailing bytes): the CPU path decides
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        if img.format != "JPEG" or img.mode not in ("RGB", "L"):
            return None
        width, height = img.size
        if width <= 0 or height <= 0 or width * height > max_pixels:
            return None
        orientation = img.getexif().get(0x0112, 1)
        return orientation if orientation in range(1, 9) else 1
    except Exception:
        return None


def _collate(batch):
    import torch

    index = [b[0] for b in batch]
    tensors = [b[1] for b in batch if b[1] is not None]
    reasons = [b[2] for b in batch]
    raw = [(b[0], b[3]) for b in batch if b[3] is not None]
    pixels = torch.stack(tensors) if tensors else None
    pixel_index = [b[0] for b in batch if b[1] is not None]
    # The rest of each decode's work, without the pixels (they travel as one stacked tensor).
    fed = [(b[0], Fed(None, b[4].color, b[4].thumbs, b[4].cpu)) for b in batch if b[4] is not None]
    if not raw:
        return index, pixels, reasons, pixel_index, None, fed
    # One shared-memory tensor per batch (not one per image) for the raw bytes.
    blob = torch.frombuffer(bytearray(b"".join(data for _, (data, _) in raw)), dtype=torch.uint8)
    lengths = [len(data) for _, (data, _) in raw]
    return index, pixels, reasons, pixel_index, (blob, lengths, [i for i, _ in raw], [o for _, (_, o) in raw]), fed


# EXIF orientation -> the tensor ops of PIL's ImageOps.exif_transpose, on (..., H, W).
def apply_orientation(image, orientation: int):
    import torch

    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-2, -1)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-2, -1)
    if orientation == 6:
        return torch.rot90(image, -1, dims=(-2, -1))
    if orientation == 7:
        return image.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return torch.rot90(image, 1, dims=(-2, -1))
    return image


_TENSOR_SAFE_STEPS = ("Resize", "CenterCrop", "MaybeConvertMode", "MaybeToTensor", "Normalize")


def tensor_preprocess_supported(preprocess) -> bool:
    """True if `preprocess` is open_clip's eval pipeline (Resize, CenterCrop, ...,
    Normalize), whose steps all work on batched float tensors on any device."""
    steps = getattr(preprocess, "transforms", None)
    return bool(steps) and all(type(t).__name__ in _TENSOR_SAFE_STEPS for t in steps)


def preprocess_tensors(images: list, preprocess, device: str):
    """Decoded uint8 CHW tensors (one per image, any sizes) -> a preprocessed float
    batch in input order, running `preprocess`'s steps batched per image size
    (catalog photos mostly share one). Matches the PIL path to within
    interpolation differences (bicubic overshoot is clamped like PIL's uint8)."""
    import torch

    steps = preprocess.transforms
    out: list = [None] * len(images)
    by_size: dict[tuple, list[int]] = {}
    for k, img in enumerate(images):
        by_size.setdefault(tuple(img.shape), []).append(k)
    for shape, members in by_size.items():
        x = torch.stack([images[k] for k in members]).to(device, non_blocking=True).float().div_(255.0)
        if shape[0] == 1:
            x = x.expand(-1, 3, -1, -1)
        for step in steps:
            x = step(x)
            if type(step).__name__ == "Resize":
                x = x.clamp_(0.0, 1.0)
        for k, row in zip(members, x):
            out[k] = row
    return torch.stack(out)


@functools.lru_cache(maxsize=4)
def gpu_decode_available(device: str) -> bool:
    """nvjpeg decoding works here: a CUDA device, and torchvision decodes a tiny
    JPEG on it (checked once per device: builds without nvjpeg fail only then)."""
    if not str(device).startswith("cuda"):
        return False
    try:
        import torch
        from PIL import Image

        if not torch.cuda.is_available():
            return False
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "JPEG")
        probe = decode_jpegs([torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)], device)
        return probe[0] is not None and probe[0].shape == (3, 16, 16)
    except Exception:  # noqa: BLE001 - any failure means: decode on the CPU
        return False


def resolve_gpu_decode(setting: str, device: str, preprocess) -> bool:
    """clip.gpu_decode: "off" never; "auto" when the device is CUDA, nvjpeg is
    there and the preprocess runs on tensors; "on" the same, but says why not.
    On a CPU-only machine every setting means CPU decoding."""
    if setting == "off":
        return False
    ok = gpu_decode_available(device) and tensor_preprocess_supported(preprocess)
    if setting == "on" and not ok and str(device).startswith("cuda"):
        warnings.warn("clip.gpu_decode = 'on' but nvjpeg or a tensor-capable preprocess is missing: "
                      "decoding on the CPU", RuntimeWarning, stacklevel=2)
    return ok


def decode_jpegs(blobs: list, device: str) -> list:
    """Batched JPEG decode (nvjpeg on CUDA) to RGB uint8 CHW; a failing item is None."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29+: "use TorchCodec"
        try:
            return list(decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device))
        except (RuntimeError, ValueError):
            pass  # one bad image fails the whole batch: redo one by one
        out = []
        for blob in blobs:
            try:
                out.append(decode_jpeg(blob, mode=ImageReadMode.RGB, device=device))
            except (RuntimeError, ValueError):
                out.append(None)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        return out


def _autocast(device: str, precision: str):
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast("cuda" if str(device).startswith("cuda") else "cpu", dtype=dtype)


_threads_lock = threading.Lock()


def set_torch_threads(n: int | None) -> None:
    """The forward's intra-op threads for this process (each Dask worker sets its own).
    Never restored afterwards: a restore racing another thread's forward is what made it a
    racy global; the setting belongs to the process, not to one call."""
    import torch

    with _threads_lock:
        if n and n != torch.get_num_threads():
            torch.set_num_threads(n)


def _threaded_batches(dataset, batch_size: int, workers: int, prefetch: int):
    """Collated batches in order, decoded by `workers` threads, `workers * prefetch` batches ahead."""
    from concurrent.futures import ThreadPoolExecutor

    starts = iter(range(0, len(dataset), batch_size))

    def load(start: int):
        return _collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        ahead = collections.deque(pool.submit(load, s) for s in itertools.islice(starts, workers * prefetch))
        while ahead:
            batch = ahead.popleft().result()
            for s in itertools.islice(starts, 1):
                ahead.append(pool.submit(load, s))
            yield batch


def compute_embeddings(
    paths: list[str],
    clip: LoadedClip,
    batch_size: int,
    decode_workers: int,
    max_pixels: int,
    progress=None,
    *,
    prefetch_batches: int = 2,
    torch_threads: int | None = None,
    precision: str = "fp32",
    gpu_decode: str = "auto",
    timings: dict | None = None,
    on_batch=None,
    on_decode_started=None,
    feed: FeedSpec | None = None,
    on_fed=None,
) -> tuple[np.ndarray, list[str]]:
    """Embed images. Returns (vectors[n, d] L2-normalised float32, reasons[n]):
    a non-empty reason marks a rejected image whose vector row is zeros.

    `decode_workers` processes decode while the model runs (0 = in this process),
    each keeping `prefetch_batches` batches ready (threads inside a daemonic process,
    e.g. a Dask worker); `torch_threads` sets the
    forward's intra-op threads for this process (None/0 = leave as is);
    `precision` "bf16"/"fp16" runs the forward under autocast;
    `gpu_decode` "auto"/"on"/"off": nvjpeg decoding on CUDA (see module doc); "auto" is off when `feed`
    wants colour or thumbnails (nvjpeg would add a second decode to the one those need).
    `timings`: a dict that gets wait_s (the model waiting for decoded batches,
    worker start-up included), model_s (forward, GPU decode included) and wall_s.
    `on_batch(rows, vectors)`: called after each batch with the input rows it
    embedded and their vectors (so a caller can store them before the next batch).
    `on_decode_started()`: called once the decode workers are forked; threads a caller starts
    after that cannot leave a lock held in a forked child (a fork beside a busy thread can deadlock it).
    `feed`: what each decode makes besides the model's pixels (pixel colour, thumbnails; image_feed);
    `on_fed(rows, feds)`: called per batch with those results (Fed without pixels) of the rows decoded
    on the CPU. `timings` then also gets cpu_s: CPU seconds per stage (decode, color, thumbnails,
    normalize, model) and images: how many were decoded on the CPU."""
    import torch
    from torch.utils.data import DataLoader

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    dim = int(clip.model.text_projection.shape[1]) if hasattr(clip.model, "text_projection") else None
    out: np.ndarray | None = None
    reasons = [""] * len(paths)
    on_gpu = str(clip.device).startswith("cuda")
    feed = feed or FeedSpec(max_pixels)
    if gpu_decode == "auto" and (feed.thumb_sizes or feed.color_vocabulary is not None):
        gpu_decode = "off"  # colour and thumbnails need a CPU decode anyway: one decode feeds all three
    raw_jpeg = resolve_gpu_decode(gpu_decode, clip.device, clip.preprocess)
    if feed.color_vocabulary is not None:
        prepare_color_tables()  # once, before the decode workers fork or start (they share the tables)
    dataset = _DecodedImages(paths, clip.preprocess, clip.image_size, feed, raw_jpeg=raw_jpeg)
    cpu = dict.fromkeys((*STAGES, "normalize", "model"), 0.0)
    decoded = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    in_process = decode_workers == 0 or multiprocessing.current_process().daemon
    if decode_workers > 0 and multiprocessing.current_process().daemon:
        # A Dask worker (or any daemonic process) may not start child processes, so a
        # DataLoader cannot fork decode workers there: decode in threads (PIL releases the GIL).
        batches = _threaded_batches(dataset, batch_size, decode_workers, prefetch_batches)
    else:
        batches = iter(DataLoader(dataset, batch_size=batch_size, num_workers=decode_workers, collate_fn=_collate,
                                  pin_memory=on_gpu,
                                  prefetch_factor=prefetch_batches if decode_workers > 0 else None))
    if on_decode_started is not None:
        on_decode_started()
    waited = time.perf_counter() - started
    if not on_gpu:
        set_torch_threads(torch_threads)
    else:
        _channels_last(clip.model)
    with torch.inference_mode():
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            waited += time.perf_counter() - t0
            if batch is None:
                break
            index, pixels, batch_reasons, pixel_index, raw, fed = batch
            for i, r in zip(index, batch_reasons):
                reasons[i] = r
            for _, f in fed:
                for stage, seconds in f.cpu.items():
                    cpu[stage] += seconds
            decoded += len(fed)
            if fed and on_fed is not None:
                on_fed([i for i, _ in fed], [f for _, f in fed])
            rows = list(pixel_index)
            if pixels is not None:
                c0 = time.thread_time()
                pixels = pixels.to(clip.device, non_blocking=True)
                if pixels.dtype == torch.uint8:  # the fast path's pixels: normalised here, on the model's device
                    pixels = normalize_batch(pixels, clip.preprocess)
                cpu["normalize"] += time.thread_time() - c0
            if raw is not None:
                gpu_rows, gpu_pixels = _decode_raw_batch(raw, clip, max_pixels, reasons)
                rows += gpu_rows
                if gpu_pixels is not None:
                    pixels = gpu_pixels if pixels is None else torch.cat([pixels, gpu_pixels.to(pixels.dtype)])
            if pixels is not None and rows:
                if on_gpu:
                    pixels = pixels.contiguous(memory_format=torch.channels_last)
                with _autocast(clip.device, precision):
                    feats = clip.model.encode_image(pixels)
                feats = torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy()
                if out is None:
                    out = np.zeros((len(paths), feats.shape[1]), dtype=np.float32)
                out[rows] = feats
                if on_batch is not None:
                    on_batch(rows, feats)
            if progress is not None:
                progress.update(len(index))
    if timings is not None:
        wall = time.perf_counter() - started
        # The model's CPU: this process's, less the decodes that ran in it (threads or inline).
        own = time.process_time() - cpu_started - cpu["normalize"]
        cpu["model"] = max(0.0, own - (sum(cpu[s] for s in STAGES) if in_process else 0.0))
        timings.update(wait_s=waited, model_s=wall - waited, wall_s=wall, cpu_s=cpu, images=decoded)
    if out is None:
        out = np.zeros((len(paths), dim or 0), dtype=np.float32)
    return out, reasons


def _channels_last(model) -> None:
    """GPU only: the model's convolutions in channels-last layout (once per model)."""
    import torch

    if not getattr(model, "_catalog_channels_last", False):
        model.to(memory_format=torch.channels_last)
        model._catalog_channels_last = True


def _decode_raw_batch(raw, clip: LoadedClip, max_pixels: int, reasons: list[str]):
    """The undecoded JPEGs of one batch -> (their indices, preprocessed pixels on
    the device). Items nvjpeg fails on are decoded on the CPU instead (and
    rejected there, with the reason, if that fails too)."""
    import torch

    blob, lengths, index, orientations = raw
    offsets = np.cumsum([0, *lengths])
    blobs = [blob[offsets[k]:offsets[k + 1]] for k in range(len(lengths))]
    decoded = decode_jpegs(blobs, clip.device)
    images, rows = [], []
    for k, img in enumerate(decoded):
        i = index[k]
        if img is None:
            try:
                img = torch.from_numpy(np.asarray(decode_rgb(bytes(blobs[k].numpy()), max_pixels))).permute(2, 0, 1)
            except ImageRejected as exc:
                reasons[i] = str(exc)
                continue
        else:
            img = apply_orientation(img, orientations[k])
        images.append(img)
        rows.append(i)
    if not images:
        return [], None
    return rows, preprocess_tensors(images, clip.preprocess, clip.device)
