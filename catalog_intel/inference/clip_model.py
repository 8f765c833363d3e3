"""Loading open_clip models, offline-first.

Weights come from a local checkpoint file or from the cache that `catalog-intel
models pull` fills. Only `catalog-intel run` on a machine that is not offline
(`--offline`, HF_HUB_OFFLINE=1) fetches missing pretrained weights itself
(`ensure_weights`); everything else stops at once with a message naming the model
and the ways to supply it."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import pickle
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from catalog_intel.errors import ModelUnavailableError, WeightsNotCached
from catalog_intel.settings import ClipConfig


_TRUE = {"1", "true", "yes", "on"}


def offline_mode(flag: bool = False) -> bool:
    """--offline, or Hugging Face's own switch HF_HUB_OFFLINE=1."""
    return flag or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


@dataclass(frozen=True)
class LoadedClip:
    model: object  # open_clip.CLIP, kept untyped so this module imports without torch
    preprocess: object
    tokenizer: object
    model_id: str
    device: str
    image_size: int


def clip_cache_dir(cache_root: Path) -> Path:
    """Local folder of the CLIP weights (weights stay local when the cache is a URL)."""
    from catalog_intel.io.filesystem import local_model_root

    return local_model_root(cache_root) / "models" / "clip"


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    from catalog_intel.io.filesystem import sha256_file

    return sha256_file(path)


def checkpoint_digest(path: str, cache_root: Path | None = None) -> str:
    """sha256 of a weights file; with `cache_root`, remembered across runs by the
    file's stat (hashing a 600 MB checkpoint costs ~1 s per run otherwise)."""
    st = os.stat(path)
    if cache_root is None:
        return _file_sha256(os.path.abspath(path), st.st_size, st.st_mtime_ns)
    from catalog_intel.io.hash_cache import FileHashCache
    from catalog_intel.io.filesystem import local_model_root, stat_key

    cache = FileHashCache(local_model_root(cache_root) / "file_hashes")
    key = stat_key(path)
    known = cache.get([key]).get(key) if key else None
    if known:
        return known
    digest = _file_sha256(os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key:
        cache.put({key: digest})
    return digest


def model_id(cfg: ClipConfig, cache_root: Path | None = None) -> str:
    """Identity of the weights, used as part of every embedding cache key."""
    # Reduced-precision embeddings differ slightly from fp32 ones: keep them apart.
    suffix = "" if cfg.precision == "fp32" else f"+{cfg.precision}"
    if cfg.checkpoint:
        _require_checkpoint(cfg)
        return f"{cfg.model}@sha256:{checkpoint_digest(cfg.checkpoint, cache_root)[:16]}{suffix}"
    return f"{cfg.model}@{cfg.pretrained}{suffix}"


def _bundled_architectures() -> set[str] | None:
    """open_clip's own model-config names, read from its package folder without
    importing it (importing open_clip, and with it torch, takes seconds: a run
    whose embeddings are all cached never needs it)."""
    try:
        spec = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "model_configs"
    names = {p.stem for p in folder.glob("*.json")}
    return names or None


def _check_architecture(cfg: ClipConfig) -> None:
    """Fail fast on an unknown architecture, cheaply where possible."""
    if cfg.model_config_path:
        path = Path(cfg.model_config_path)
        if not path.is_file():
            raise ModelUnavailableError(f"clip.model_config file not found: {path}")
        if path.stem == cfg.model:  # open_clip registers a config file under its stem
            return
    elif cfg.model in (_bundled_architectures() or ()):
        return
    _register_model_config(cfg)  # the full check (imports open_clip), with its message


def _register_model_config(cfg: ClipConfig) -> None:
    import open_clip

    if cfg.model_config_path:
        path = Path(cfg.model_config_path)
        if not path.is_file():
            raise ModelUnavailableError(f"clip.model_config file not found: {path}")
        open_clip.add_model_config(path)
    if open_clip.get_model_config(cfg.model) is None:
        raise ModelUnavailableError(
            f"unknown CLIP architecture '{cfg.model}'. Known: {', '.join(open_clip.list_models()[:12])}, ... "
            "(or give an open_clip model-config JSON as clip.model_config)"
        )


def _require_checkpoint(cfg: ClipConfig) -> None:
    if not Path(cfg.checkpoint).is_file():
        raise ModelUnavailableError(
            f"CLIP checkpoint for {cfg.model} not found: {cfg.checkpoint}. "
            "Pass an existing open_clip weights file with --clip-checkpoint (or clip.checkpoint)."
        )


def _pretrained_cfg(cfg: ClipConfig) -> dict:
    import open_clip

    pcfg = open_clip.get_pretrained_cfg(cfg.model, cfg.pretrained)
    if not pcfg:
        tags = open_clip.list_pretrained_tags_by_model(cfg.model)
        raise ModelUnavailableError(
            f"open_clip has no pretrained tag '{cfg.pretrained}' for {cfg.model}; known tags: {', '.join(tags) or 'none'}"
        )
    return pcfg


def cached_pretrained_file(cfg: ClipConfig, cache_root: Path) -> Path | None:
    """The weights file `models pull` stored for (model, pretrained), if present."""
    from huggingface_hub import try_to_load_from_cache

    pcfg = _pretrained_cfg(cfg)
    folder = clip_cache_dir(cache_root)
    if pcfg.get("hf_hub"):
        repo_id, filename = os.path.split(pcfg["hf_hub"])
        filename = filename or "open_clip_pytorch_model.bin"
        stem = filename.rsplit(".", 1)[0]
        for candidate in (f"{stem}.safetensors", filename):
            found = try_to_load_from_cache(repo_id, candidate, cache_dir=str(folder))
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
    if pcfg.get("url"):
        local = folder / os.path.basename(pcfg["url"])
        if local.is_file():
            return local
    return None


def pull_pretrained(cfg: ClipConfig, cache_root: Path) -> Path:
    """Download (model, pretrained) weights into the cache. Needs network."""
    import open_clip

    _register_model_config(cfg)
    if cfg.checkpoint:
        _require_checkpoint(cfg)
        return Path(cfg.checkpoint)
    folder = clip_cache_dir(cache_root)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(open_clip.download_pretrained(_pretrained_cfg(cfg), cache_dir=str(folder)))
    except Exception as exc:
        raise ModelUnavailableError(
            f"could not download CLIP weights {cfg.model} ({cfg.pretrained}): {exc}. "
            "Without network, copy an open_clip checkpoint file here and pass it with --clip-checkpoint."
        ) from None


def _resolved_memo(cache_root: Path) -> Path:
    return clip_cache_dir(cache_root) / "resolved.json"


def _memo_lookup(cfg: ClipConfig, cache_root: Path) -> Path | None:
    try:
        memo = json.loads(_resolved_memo(cache_root).read_text())
    except (OSError, ValueError):
        return None
    found = memo.get(f"{cfg.model}@{cfg.pretrained}")
    return Path(found) if found and os.path.isfile(found) else None


def _memo_store(cfg: ClipConfig, cache_root: Path, path: Path) -> None:
    from catalog_intel.io.filesystem import atomic_write_text

    try:
        memo = json.loads(_resolved_memo(cache_root).read_text())
    except (OSError, ValueError):
        memo = {}
    memo[f"{cfg.model}@{cfg.pretrained}"] = str(path)
    try:
        atomic_write_text(_resolved_memo(cache_root), json.dumps(memo, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only cache still works, just slower


def resolve_weights(cfg: ClipConfig, cache_root: Path) -> Path:
    """The local weights file for this config, or ModelUnavailableError. Never downloads.
    Does not import open_clip when it can tell without (see _bundled_architectures)."""
    _check_architecture(cfg)
    if cfg.checkpoint:
        _require_checkpoint(cfg)
        return Path(cfg.checkpoint)
    found = _memo_lookup(cfg, cache_root)  # open_clip's pretrained registry, remembered
    if found is not None:
        return found
    found = cached_pretrained_file(cfg, cache_root)
    if found is not None:
        _memo_store(cfg, cache_root, found)
    if found is None:
        raise WeightsNotCached(
            f"CLIP weights {cfg.model} (pretrained '{cfg.pretrained}') are not in the local cache "
            f"({clip_cache_dir(cache_root)}). Fix: run `catalog-intel models pull` once on a machine with "
            "network (same cache folder; `catalog-intel run` without --offline / HF_HUB_OFFLINE=1 also fetches "
            "them), or pass a local open_clip checkpoint with --clip-checkpoint PATH."
        )
    return found


def _download_host(cfg: ClipConfig) -> str | None:
    """The host a download would contact; None where a proxy decides (no direct probe)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    pcfg = _pretrained_cfg(cfg)
    url = os.environ.get("HF_ENDPOINT", "https://huggingface.co") if pcfg.get("hf_hub") else pcfg.get("url", "")
    return urlsplit(url).hostname


def _reachable(host: str, timeout_s: float = 5.0) -> bool:
    """A quick TCP probe, so an offline machine fails in seconds instead of after the hub's retries."""
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def ensure_weights(cfg: ClipConfig, cache_root: Path, offline: bool = False, say=print) -> Path:
    """`resolve_weights`, and on a cache miss outside offline mode a first-run download
    into the cache (open_clip / huggingface_hub draw the progress bar)."""
    try:
        return resolve_weights(cfg, cache_root)
    except WeightsNotCached as exc:
        if offline_mode(offline):
            raise WeightsNotCached(f"{exc} This run is offline (--offline or HF_HUB_OFFLINE=1), so it "
                                   "does not download.") from None
        missing = exc
    host = _download_host(cfg)
    if host and not _reachable(host):
        raise WeightsNotCached(f"{missing} No network: {host} cannot be reached, so they were not downloaded.")
    say(f"CLIP weights {cfg.model} ({cfg.pretrained}) are not cached yet: downloading them once into "
        f"{clip_cache_dir(cache_root)} (--offline stops this)")
    try:
        path = pull_pretrained(cfg, cache_root)
    except ModelUnavailableError as exc:
        raise WeightsNotCached(f"{missing} The download failed: {exc}") from None
    _memo_store(cfg, cache_root, path)
    say(f"CLIP weights saved to {path}")
    return path


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


_load_lock = threading.Lock()


# torch.nn.init's random initialisers: a model about to get every parameter from its checkpoint skips them
_RANDOM_INITS = ("kaiming_normal_", "kaiming_uniform_", "normal_", "orthogonal_", "sparse_", "trunc_normal_",
                 "uniform_", "xavier_normal_", "xavier_uniform_")


@contextlib.contextmanager
def _loading_checkpoint():
    """Meanwhile torch.load memory-maps checkpoint files and torch.nn.init's random initialisers do nothing.
    open_clip built ViT-B-32 with random weights (2.3 CPU-s), then read all of its 600 MB checkpoint into
    fresh tensors (about 2 CPU-s) before copying them into the model; it loads strictly, so every parameter
    comes from the file and neither is needed. A checkpoint in torch's legacy (non-zip) format cannot be
    mapped and is read as before. Nothing else in the package builds torch modules (the heads are numpy)."""
    import torch

    plain_load = torch.load
    inits = {name: getattr(torch.nn.init, name) for name in _RANDOM_INITS}

    def load(f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and "mmap" not in kwargs:
            try:
                return plain_load(f, *args, mmap=True, **kwargs)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
        return plain_load(f, *args, **kwargs)

    def skip(tensor, *args, **kwargs):
        return tensor

    torch.load = load
    for name in inits:
        setattr(torch.nn.init, name, skip)
    try:
        yield
    finally:
        torch.load = plain_load
        for name, init in inits.items():
            setattr(torch.nn.init, name, init)


@functools.lru_cache(maxsize=2)
def _load(model_name: str, weights: str, model_config: str, device: str, ident: str) -> LoadedClip:
    import open_clip
    import torch

    try:
        # open_clip loads with torch.load(weights_only=True) (open-clip-torch>=2.29, torch>=2.6):
        # a checkpoint that holds pickled objects is refused instead of run.
        with _loading_checkpoint():
            model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights, device=device)
    except pickle.UnpicklingError as exc:
        raise ModelUnavailableError(
            f"refused to load CLIP checkpoint {weights}: it holds pickled Python objects besides tensors, and "
            f"loading those could run code ({str(exc).splitlines()[-1][:300]}). Use a checkpoint from a source you "
            "trust, saved as a plain state_dict or as .safetensors."
        ) from None
    except Exception as exc:
        raise ModelUnavailableError(
            f"could not load CLIP {model_name} from {weights}: {exc}. "
            "Check that the checkpoint was saved from this architecture (clip.model / --clip-model)."
        ) from None
    model.eval()
    tokenizer = open_clip.get_tokenizer(model_name)
    size = model.visual.image_size
    image_size = size[0] if isinstance(size, (tuple, list)) else int(size)
    torch.set_grad_enabled(False)
    return LoadedClip(model, preprocess, tokenizer, ident, device, image_size)


def load_clip(cfg: ClipConfig, cache_root: Path) -> LoadedClip:
    """The model for this config, loaded once per process."""
    weights = resolve_weights(cfg, cache_root)
    _register_model_config(cfg)
    with _load_lock:
        return _load(cfg.model, str(weights), cfg.model_config_path, pick_device(cfg.device), model_id(cfg, cache_root))


def encode_texts(clip: LoadedClip, texts: list[str]):
    """Text tower of the loaded CLIP model: [n, d] L2-normalised float32.

    Prompts are a few words, but open_clip pads every one to the 77-token context. CLIP's
    text attention is causal and pools at the end-of-text token, so the padding after the
    longest prompt changes nothing: the tower runs on the tokens actually used (3-4x less
    work for the label vocabulary). Other text towers take open_clip's own path."""
    import torch

    model = clip.model
    with torch.inference_mode():
        tokens = clip.tokenizer(texts).to(clip.device)
        used = int((tokens != 0).sum(dim=1).max()) if tokens.numel() else 0
        if _causal_clip_text_tower(model) and 0 < used < tokens.shape[1]:
            features = _encode_used_tokens(model, tokens[:, :used])
        else:
            features = model.encode_text(tokens)
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()


def _causal_clip_text_tower(model) -> bool:
    """open_clip's CLIP class with its causal mask and end-of-text pooling (OpenAI-style towers)."""
    import open_clip

    mask = getattr(model, "attn_mask", None)
    return (type(model) is open_clip.CLIP and mask is not None
            and getattr(model, "text_pool_type", "argmax") in ("argmax", "eos"))


def _encode_used_tokens(model, tokens):
    """CLIP.encode_text over the first `tokens.shape[1]` positions (open_clip 3.x)."""
    import torch
    from open_clip.transformer import text_global_pool

    used = tokens.shape[1]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:used].to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:used, :used]))
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    if model.text_projection is None:
        return x
    return model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
