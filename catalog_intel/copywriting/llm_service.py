"""Where the LLM lives for a run: the configured endpoint, or an embedded
llama.cpp server started for the run (when llm.base_url is empty)."""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from catalog_intel.errors import ModelUnavailableError
from catalog_intel.settings import Config


def uses_embedded(config: Config) -> bool:
    return config.llm.enabled and not config.llm.base_url


def prepare_embedded(config: Config, progress: bool = True) -> Path:
    """The local GGUF: llm.embedded_model_path, else the default one, assembled into the
    cache on first use; fails fast with the fix."""
    from catalog_intel.copywriting.local_llm import ensure_gguf, install_hint

    if importlib.util.find_spec("xllamacpp") is None:
        raise ModelUnavailableError(
            "the embedded LLM runtime (xllamacpp) is not installed: " + install_hint()
            + ", or set llm.base_url / --llm-base-url to an OpenAI-compatible server, or run with --no-llm"
        )
    if config.llm.embedded_model_path:
        gguf = Path(config.llm.embedded_model_path).expanduser()
        if not gguf.is_file():
            raise ModelUnavailableError(
                f"llm.embedded_model_path {gguf} is not a file: give the path of a local GGUF model, "
                "or leave it empty for the default model"
            )
        return gguf
    return ensure_gguf(config.paths.cache_path, progress=progress)


@contextmanager
def llm_endpoint(config: Config) -> Iterator[Config]:
    """Yields the config whose llm.base_url/model reach a running server; an
    embedded one is stopped when the block ends (also on errors)."""
    if not uses_embedded(config):
        yield config
        return
    from catalog_intel.copywriting.local_llm import EmbeddedLLMServer

    gguf = prepare_embedded(config)
    llm = config.llm
    # A child process: a native crash cannot take the run down, and it exits with us.
    with EmbeddedLLMServer(gguf, n_ctx=llm.embedded_context, n_parallel=llm.embedded_parallel,
                           threads=llm.embedded_threads or None, nice=llm.embedded_nice, isolate=True,
                           speculative=llm.embedded_speculative, draft_max=llm.embedded_draft_max) as server:
        yield config.model_copy(update={"llm": llm.model_copy(update={"base_url": server.base_url, "model": server.model})})
