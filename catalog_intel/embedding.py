"""Image embeddings: batched open_clip forward with decoding in worker
processes, cached in a Parquet store keyed by (content sha256, model id)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl

from .clip_model import LoadedClip
from .images import ImageRejected, load_rgb
from .storage import ParquetStore


def embedding_store(cache_root: Path, model_id: str) -> ParquetStore:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id)
    return ParquetStore(cache_root / "embeddings" / slug, key="sha256")


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
    """Map-style dataset: path -> preprocessed tensor, or the reason it was rejected."""

    def __init__(self, paths: list[str], preprocess, max_pixels: int, min_side: int):
        self.paths, self.preprocess, self.max_pixels, self.min_side = paths, preprocess, max_pixels, min_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return i, self.preprocess(load_rgb(self.paths[i], self.max_pixels, self.min_side)), ""
        except ImageRejected as exc:
            return i, None, str(exc)


def _collate(batch):
    import torch

    index = [b[0] for b in batch]
    tensors = [b[1] for b in batch if b[1] is not None]
    reasons = [b[2] for b in batch]
    return index, (torch.stack(tensors) if tensors else None), reasons


def iter_embeddings(
    paths: list[str],
    clip: LoadedClip,
    batch_size: int,
    decode_workers: int,
    max_pixels: int,
):
    """Embed images batch by batch. Yields (indices, vectors, reasons) per batch:
    vectors[i] is the L2-normalised float32 embedding of paths[indices[i]], or
    zeros where reasons[i] is non-empty (the image was rejected)."""
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _DecodedImages(paths, clip.preprocess, max_pixels, clip.image_size),
        batch_size=batch_size,
        num_workers=decode_workers,
        collate_fn=_collate,
        pin_memory=clip.device.startswith("cuda"),
    )
    with torch.inference_mode():
        for index, pixels, reasons in loader:
            ok = [j for j, r in enumerate(reasons) if not r]
            vectors = None
            if pixels is not None:
                feats = clip.model.encode_image(pixels.to(clip.device, non_blocking=True))
                feats = torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy()
                vectors = np.zeros((len(index), feats.shape[1]), dtype=np.float32)
                vectors[ok] = feats
            yield index, vectors, reasons


def compute_embeddings(paths, clip, batch_size, decode_workers, max_pixels, progress=None):
    """All embeddings at once: (vectors[n, d], reasons[n]); see iter_embeddings."""
    out, reasons = None, [""] * len(paths)
    for index, vectors, batch_reasons in iter_embeddings(paths, clip, batch_size, decode_workers, max_pixels):
        for i, r in zip(index, batch_reasons):
            reasons[i] = r
        if vectors is not None:
            if out is None:
                out = np.zeros((len(paths), vectors.shape[1]), dtype=np.float32)
            out[index] = vectors
        if progress is not None:
            progress.update(len(index))
    return (out if out is not None else np.zeros((len(paths), 0), dtype=np.float32)), reasons
