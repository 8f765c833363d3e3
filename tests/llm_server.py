"""A small, real OpenAI-compatible chat-completions server for tests.

Standard library only.  It listens on 127.0.0.1 (port 0 = a free port) and
serves from a daemon thread::

    from llm_server import FakeLLMServer, FaultPlan

    with FakeLLMServer(faults=FaultPlan(["http_500", None])) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="test")
        ...
        assert srv.requests == 2

Endpoints
---------
* ``GET  /v1/models``            -> one model, ``fake-llm``.
* ``POST /v1/chat/completions``  -> a ``chat.completion`` whose message
  content is a JSON string of catalog copy (title, bullet_points,
  description, style_summary, seo_tags) built deterministically from the
  product attributes found in the last user message (the substring from the
  first ``{`` to the last ``}``, parsed as JSON).  Values equal to
  ``"unknown"`` are skipped, and the copy mentions no attribute value that is
  not in the request.

Fault injection
---------------
A :class:`FaultPlan` picks, per chat-completions request, one of
:data:`FAULT_KINDS` or ``None``.  A request may also force a fault with the
header ``X-Fake-Fault: <kind>`` (``none`` forces a normal answer).

CLI::

    python tests/llm_server.py --port 8099 [--fault-rate 0.3] [--seed 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = ["FAULT_KINDS", "FaultPlan", "FakeLLMServer", "build_copy", "extract_attributes"]

MODEL_ID = "fake-llm"

FAULT_KINDS: tuple[str, ...] = (
    "http_429",
    "http_500",
    "http_503",
    "hang",
    "drop",
    "invalid_json",
    "missing_fields",
    "overlong",
    "empty",
)

_UNSET_VALUES = {"unknown", "", "n/a", "na", "null", "none_specified"}


def _check_kind(kind: str | None) -> str | None:
    if kind is not None and kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
    return kind


# --------------------------------------------------------------------------
# Fault plan
# --------------------------------------------------------------------------


class FaultPlan:
    """Decides, per request, which fault (if any) to apply.

    Modes (checked in this order for every request):

    1. ``always_fail_if``: a predicate on the parsed product attributes.  A
       matching request gets ``kind``.  With ``fail_first_n=N`` only the first
       N matching attempts *per product* (same attributes) fail; later ones go
       on to the next rules.  ``fail_first_n=None`` means every attempt fails.
    2. ``script``: a list of fault names / ``None`` applied cyclically, one
       entry per request.
    3. ``rate``: each request faults with probability ``rate``, the kind drawn
       uniformly from ``kinds``, using ``random.Random(seed)`` (reproducible).

    ``retry_after`` is the ``Retry-After`` header value sent with ``http_429``;
    ``hang_s`` is how long ``hang`` stalls (interrupted at once by
    ``FakeLLMServer.stop()``).  The plan is thread-safe.
    """

    def __init__(
        self,
        script: Sequence[str | None] | None = None,
        *,
        rate: float = 0.0,
        seed: int | None = None,
        kinds: Iterable[str] | None = None,
        always_fail_if: Callable[[dict], bool] | None = None,
        kind: str = "http_500",
        fail_first_n: int | None = None,
        retry_after: str | float | int = "1",
        hang_s: float = 30.0,
    ) -> None:
        self.script: list[str | None] | None = (
            [_check_kind(k) for k in script] if script is not None else None
        )
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        self.rate = float(rate)
        self.seed = seed
        self.kinds: list[str] = [
            _check_kind(k) for k in (kinds if kinds is not None else FAULT_KINDS)  # type: ignore[misc]
        ]
        if self.rate > 0 and not self.kinds:
            raise ValueError("kinds must not be empty when rate > 0")
        self.always_fail_if = always_fail_if
        self.kind = _check_kind(kind)
        if fail_first_n is not None and fail_first_n < 0:
            raise ValueError("fail_first_n must be >= 0")
        self.fail_first_n = fail_first_n
        self.retry_after = str(retry_after)
        self.hang_s = float(hang_s)
        self._lock = threading.Lock()
        self.reset()

    # -- constructors ------------------------------------------------------
    @classmethod
    def scripted(cls, script: Sequence[str | None], **kw: Any) -> "FaultPlan":
        """Cyclic script of fault names / None."""
        return cls(script, **kw)

    @classmethod
    def random(
        cls,
        rate: float,
        seed: int | None = 0,
        kinds: Iterable[str] | None = None,
        **kw: Any,
    ) -> "FaultPlan":
        """Seeded random faults at ``rate`` drawn from ``kinds`` (default: all)."""
        return cls(rate=rate, seed=seed, kinds=kinds, **kw)

    @classmethod
    def fail_product(
        cls,
        predicate: Callable[[dict], bool],
        kind: str = "http_500",
        first_n: int | None = None,
        **kw: Any,
    ) -> "FaultPlan":
        """Fail (the first ``first_n``, or all) attempts for matching products."""
        return cls(always_fail_if=predicate, kind=kind, fail_first_n=first_n, **kw)

    # -- state ---------------------------------------------------------------
    def reset(self) -> None:
        """Rewind the script, reseed the RNG and forget per-product attempts."""
        with self._lock:
            self._script_iter = itertools.cycle(self.script) if self.script else None
            self._rng = random.Random(self.seed)
            self._attempts: dict[str, int] = {}

    @staticmethod
    def product_key(attrs: Mapping[str, Any]) -> str:
        return json.dumps(attrs, sort_keys=True, default=str)

    def attempts_for(self, attrs: Mapping[str, Any]) -> int:
        """How many matching attempts ``always_fail_if`` has seen for a product."""
        with self._lock:
            return self._attempts.get(self.product_key(attrs), 0)

    def decide(self, attrs: Mapping[str, Any] | None = None) -> str | None:
        """Return the fault name for the next request (or None)."""
        attrs = dict(attrs or {})
        with self._lock:
            if self.always_fail_if is not None:
                try:
                    matched = bool(self.always_fail_if(attrs))
                except Exception:
                    matched = False
                if matched:
                    key = self.product_key(attrs)
                    n = self._attempts.get(key, 0)
                    self._attempts[key] = n + 1
                    if self.fail_first_n is None or n < self.fail_first_n:
                        return self.kind
            if self._script_iter is not None:
                return next(self._script_iter)
            if self.rate > 0.0:
                # Always consume two draws so the sequence is stable.
                hit = self._rng.random() < self.rate
                choice = self._rng.choice(self.kinds)
                return choice if hit else None
            return None

    def sequence(self, n: int, attrs: Mapping[str, Any] | None = None) -> list[str | None]:
        """Draw ``n`` decisions (advances the plan's state)."""
        return [self.decide(attrs) for _ in range(n)]

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return (
            f"FaultPlan(script={self.script!r}, rate={self.rate}, seed={self.seed}, "
            f"kinds={self.kinds!r}, always_fail_if={self.always_fail_if!r}, "
            f"kind={self.kind!r}, fail_first_n={self.fail_first_n})"
        )


# --------------------------------------------------------------------------
# Copy generation
# --------------------------------------------------------------------------


def extract_attributes(messages: Any) -> dict:
    """Parse the JSON object embedded in the last user message that has one ({} if none):
    a feedback message after an answer carries none, the product's message before it does."""
    if not isinstance(messages, list):
        return {}
    for msg in reversed(messages):
        if not isinstance(msg, dict) or msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(
                p.get("text", "") for p in content if isinstance(p, dict)
            )
        if not isinstance(content, str):
            continue
        start, end = content.find("{"), content.rfind("}")
        if start == -1 or end <= start:
            continue
        try:
            obj = json.loads(content[start : end + 1])
        except ValueError:
            continue
        return obj if isinstance(obj, dict) else {}
    return {}


def _known(attrs: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        val = attrs.get(key)
        if val is None or isinstance(val, (dict, list)):
            continue
        text = " ".join(str(val).split())
        if text.lower() in _UNSET_VALUES:
            continue
        return text
    return None


def _cap(text: str) -> str:
    """Title-case each word and hyphen part ("v-neck" -> "V-Neck")."""
    return " ".join(
        "-".join(p[:1].upper() + p[1:] for p in w.split("-")) for w in text.split()
    )


def _sleeve_phrase(sleeve: str) -> str:
    low = sleeve.lower()
    if "sleeve" in low:
        return sleeve
    return f"{sleeve} sleeves"


# Copy in another language, when the system prompt asks for one ("Write every field in German only").
_LANGUAGE_ASKED = re.compile(r"Write every field in (\w+) only")
_IN_LANGUAGE = {
    "German": {"colour": "Farbe", "pattern": "Muster", "fillers": ("Vielseitig kombinierbar", "Bequem im Alltag"),
               "description": "Ein {lead} für jeden Tag.", "summary": "Schlicht und vielseitig.", "tag": "damen"},
    "French": {"colour": "Couleur", "pattern": "Motif", "fillers": ("Facile à porter", "Une pièce polyvalente"),
               "description": "Un {lead} pour tous les jours.", "summary": "Simple et polyvalent.", "tag": "femme"},
}


def requested_language(messages: Any) -> str | None:
    for msg in messages if isinstance(messages, list) else []:
        if isinstance(msg, dict) and msg.get("role") == "system" and isinstance(msg.get("content"), str):
            m = _LANGUAGE_ASKED.search(msg["content"])
            if m and m.group(1) in _IN_LANGUAGE:
                return m.group(1)
    return None


def _build_copy_in(language: str, attrs: Mapping[str, Any]) -> dict:
    """Deterministic copy in German or French from the (already translated) attribute words."""
    words = _IN_LANGUAGE[language]
    color, pattern, sleeve = _known(attrs, "color"), _known(attrs, "pattern"), _known(attrs, "sleeve")
    garment = _known(attrs, "garment_type") or "Top"
    title = " ".join(_cap(x) for x in (color, pattern, garment) if x)
    bullets = [f"{words['colour']}: {color}" if color else None, f"{words['pattern']}: {pattern}" if pattern else None,
               _cap(sleeve) if sleeve else None]
    bullets = [b for b in bullets if b] + list(words["fillers"])
    lead = " ".join(x for x in (garment, color) if x)
    tags = [garment.lower(), *(x.lower() for x in (color, pattern) if x), words["tag"]]
    return {"title": title, "bullet_points": bullets[:4], "description": words["description"].format(lead=lead),
            "style_summary": words["summary"], "seo_tags": list(dict.fromkeys(tags))[:5]}


def build_copy(attrs: Mapping[str, Any], language: str | None = None) -> dict:
    """Deterministic, schema-valid catalog copy from product attributes.

    Only attribute values present (and not "unknown") are mentioned. With a `language`
    (German, French) the copy is in that language.
    """
    if language:
        return _build_copy_in(language, attrs)
    color = _known(attrs, "color", "colour")
    pattern = _known(attrs, "pattern")
    neckline = _known(attrs, "neckline")
    sleeve = _known(attrs, "sleeve", "sleeve_length", "sleeves")
    fabric = _known(attrs, "fabric", "material")
    fit = _known(attrs, "fit")
    garment = _known(attrs, "garment_type", "garment", "category") or "garment"

    # Title: "<Color> <Pattern> <Neckline> <Garment> [with <Sleeve>]"
    words: list[str] = []
    for part in (color, pattern, neckline, garment):
        if part:
            words.extend(_cap(part).split())
    if sleeve:
        words.extend(["with"] + _cap(_sleeve_phrase(sleeve)).split())
    title = " ".join(words[:12])

    bullets: list[str] = []
    if color:
        bullets.append(f"Colour: {color}")
    if pattern and fabric:
        bullets.append(f"{_cap(pattern)} pattern in {fabric}")
    elif pattern:
        bullets.append(f"{_cap(pattern)} pattern")
    elif fabric:
        bullets.append(f"Made from {fabric}")
    if neckline and sleeve:
        bullets.append(f"{_cap(neckline)} neckline with {_sleeve_phrase(sleeve)}")
    elif neckline:
        bullets.append(f"{_cap(neckline)} neckline")
    elif sleeve:
        bullets.append(_cap(_sleeve_phrase(sleeve)))
    if fit:
        bullets.append(f"{_cap(fit)} fit")
    for filler in ("Easy to style for everyday wear", "A versatile wardrobe piece"):
        if len(bullets) >= 2:
            break
        bullets.append(filler)
    bullets = bullets[:4]

    details = []
    if pattern:
        details.append(f"a {pattern} pattern")
    if neckline:
        details.append(f"a {neckline} neckline")
    if sleeve:
        details.append(_sleeve_phrase(sleeve))
    if fit:
        details.append(f"a {fit} fit")
    if len(details) > 1:
        details[-1] = "and " + details[-1]
    lead = " ".join(x for x in (color, garment) if x)
    description = f"This {lead}"
    if fabric:
        description += f" is made from {fabric}"
        if details:
            description += " and features " + ", ".join(details)
    elif details:
        description += " features " + ", ".join(details)
    else:
        description += " is an easy everyday choice"
    description += ". It is simple to pair with the rest of your wardrobe."

    summary_bits = [x for x in (fit, color, garment) if x]
    style_summary = "A " + " ".join(summary_bits) + " for everyday styling."

    tags: list[str] = []
    for t in (
        f"{color} {garment}" if color else None,
        garment,
        color,
        f"{pattern} {garment}" if pattern else None,
        fabric,
        f"{neckline} {garment}" if neckline else None,
        fit,
        f"{garment} clothing",
        f"{garment} style",
    ):
        if t:
            t = t.lower()
            if t not in tags:
                tags.append(t)
    seo_tags = tags[:5]

    return {
        "title": title,
        "bullet_points": bullets,
        "description": description,
        "style_summary": style_summary,
        "seo_tags": seo_tags,
    }


def _fault_content(kind: str, attrs: Mapping[str, Any]) -> str:
    """Message content for the 200-with-bad-content faults."""
    if kind == "invalid_json":
        return '{"title": "Trunc'
    if kind == "empty":
        return ""
    copy = build_copy(attrs)
    if kind == "missing_fields":
        return json.dumps(
            {
                "title": copy["title"],
                "description": copy["description"],
                "style_summary": copy["style_summary"],
            }
        )
    if kind == "overlong":
        base = copy["title"].split() or ["Garment"]
        title = " ".join(itertools.islice(itertools.cycle(base), 60))
        unit = copy["description"] + " "
        description = (unit * (20000 // len(unit) + 1))[:20000]
        copy = dict(copy, title=title, description=description)
        return json.dumps(copy)
    raise ValueError(kind)


# --------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # many concurrent clients without SYN retries
    owner: "FakeLLMServer"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "FakeLLM/1.0"
    # HTTP/1.0: one request per connection, so no idle keep-alive threads.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.owner.verbose:
            super().log_message(format, *args)

    # -- helpers -------------------------------------------------------------
    def _send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # client went away
        self.close_connection = True

    def _error(self, status: int, message: str, etype: str, code: str | None,
               headers: Mapping[str, str] | None = None) -> None:
        self._send_json(
            status,
            {"error": {"message": message, "type": etype, "param": None, "code": code}},
            headers,
        )

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    # -- routes --------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list",
                                  "data": [{"id": MODEL_ID, "object": "model",
                                            "created": 0, "owned_by": "fake"}]})
        elif path in ("", "/health", "/v1"):
            self._send_json(200, {"status": "ok"})
        else:
            self._error(404, f"Unknown path {self.path}", "invalid_request_error", "not_found")

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"Unknown path {self.path}", "invalid_request_error", "not_found")
            return
        owner = self.server.owner
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
        except (OSError, ValueError):
            self._drop()
            return
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            body = None
        attrs = extract_attributes(body.get("messages")) if isinstance(body, dict) else {}

        forced = self.headers.get("X-Fake-Fault")
        fault: str | None
        if forced is not None:
            forced = forced.strip().lower()
            fault = None if forced in ("", "none") else forced
            if fault not in FAULT_KINDS and fault is not None:
                fault = None
        else:
            fault = owner.faults.decide(attrs) if owner.faults is not None else None
        owner._record(fault, body, attrs, self.headers)

        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._error(400, "Request body must be JSON with a 'messages' list",
                        "invalid_request_error", "invalid_body")
            return

        if owner.latency_s > 0 and owner._stopping.wait(owner.latency_s):
            self._drop()
            return
        kind = (body.get("response_format") or {}).get("type") if isinstance(body.get("response_format"), dict) else None
        if kind in owner.reject_response_format:
            self._error(400, owner.reject_message
                        or f"'response_format.type' : value is not one of the allowed values ['text']: {kind}",
                        "invalid_request_error", "invalid_request_error")
            return

        plan = owner.faults
        if fault == "http_429":
            retry_after = plan.retry_after if plan is not None else "1"
            self._error(429, "Rate limit reached for fake-llm. Please try again later.",
                        "requests", "rate_limit_exceeded", {"Retry-After": retry_after})
            return
        if fault == "http_500":
            self._error(500, "The server had an error while processing your request.",
                        "server_error", None)
            return
        if fault == "http_503":
            self._error(503, "The engine is currently overloaded, please try again later.",
                        "server_error", "service_unavailable")
            return
        if fault == "drop":
            self._drop()
            return
        if fault == "hang":
            hang_s = plan.hang_s if plan is not None else 30.0
            if owner._stopping.wait(hang_s):
                self._drop()  # server stopping: give up at once
                return
            # after the (long) stall, answer normally
        content = (
            _fault_content(fault, attrs)
            if fault in ("invalid_json", "missing_fields", "overlong", "empty")
            else json.dumps(build_copy(attrs, requested_language(body.get("messages"))))
        )
        if owner.fenced and fault is None:
            content = "Here is the copy:\n```json\n" + content + "\n```"
        self._send_json(200, _completion(body, content))


def _completion(body: Mapping[str, Any], content: str) -> dict:
    prompt_chars = 0
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            prompt_chars += len(str(m.get("content") or ""))
    prompt_tokens = max(1, prompt_chars // 4)
    completion_tokens = max(1, len(content) // 4) if content else 0
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model") or MODEL_ID),
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class FakeLLMServer:
    """A real HTTP server speaking the OpenAI chat-completions API.

    ``FakeLLMServer(faults=None, latency_s=0.0, host="127.0.0.1", port=0)``.
    Use as a context manager or call ``start()`` / ``stop()``.
    """

    def __init__(
        self,
        faults: FaultPlan | None = None,
        latency_s: float = 0.0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        reject_response_format: tuple[str, ...] = (),
        reject_message: str | None = None,
        fenced: bool = False,
    ) -> None:
        # reject_response_format=("json_schema",): answer 400 to that kind, as Ollama's /v1 and
        # some gateways do (LM Studio, in turn, refuses "json_object"); fenced: wrap the JSON in
        # a ```json block, as models do when no response_format holds them.
        # reject_message: that 400's message instead (one that does not name the response format).
        self.reject_response_format = tuple(reject_response_format)
        self.reject_message = reject_message
        self.fenced = fenced
        self.faults = faults
        self.latency_s = float(latency_s)
        self.host = host
        self.port = port
        self.verbose = verbose
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests = 0
        self._log: list[dict] = []
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> "FakeLLMServer":
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _Server((self.host, self.port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"FakeLLMServer:{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes hanging / latency sleeps at once
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    close = stop

    def serve_forever(self) -> None:
        """Run in the foreground until KeyboardInterrupt (CLI use)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}/v1"

    # -- bookkeeping -----------------------------------------------------------
    def _record(self, fault: str | None, body: Any, attrs: dict, headers: Mapping[str, str] | None = None) -> None:
        with self._cond:
            self._requests += 1
            self._log.append(
                {"time": time.monotonic(), "fault": fault, "body": body, "attrs": attrs,
                 "headers": {k.lower(): v for k, v in (headers or {}).items()}}
            )
            self._cond.notify_all()

    @property
    def requests(self) -> int:
        """Number of POST /v1/chat/completions received."""
        with self._lock:
            return self._requests

    @property
    def request_log(self) -> list[dict]:
        """Copy of the per-request log: ``{"time", "fault", "body", "attrs"}``."""
        with self._lock:
            return list(self._log)

    def faults_applied(self) -> list[str | None]:
        return [e["fault"] for e in self.request_log]

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least ``n`` chat requests have arrived."""
        with self._cond:
            return self._cond.wait_for(lambda: self._requests >= n, timeout)

    def reset(self) -> None:
        """Zero the counter, clear the log and reset the fault plan's state."""
        with self._lock:
            self._requests = 0
            self._log = []
        if self.faults is not None:
            self.faults.reset()


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Fake OpenAI chat-completions server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join(FAULT_KINDS),
                    help="comma-separated fault kinds for --fault-rate")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    ap.add_argument("--hang-s", type=float, default=30.0)
    ap.add_argument("--retry-after", default="1")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    plan = FaultPlan(rate=args.fault_rate, seed=args.seed, kinds=kinds,
                     hang_s=args.hang_s, retry_after=args.retry_after)
    srv = FakeLLMServer(plan, latency_s=args.latency, host=args.host, port=args.port,
                        verbose=not args.quiet)
    srv.start()
    print(f"FakeLLMServer listening on {srv.base_url} "
          f"(fault rate {args.fault_rate}, kinds {kinds})", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
