"""A small, real OpenAI-compatible chat-completions server for tests (standard library only).

`FakeLLMServer` listens on 127.0.0.1 (a free port) from a daemon thread: GET /v1/models, and
POST /v1/chat/completions answering schema-valid catalog copy built deterministically from the
product attributes in the last user message (the JSON object in it); "unknown" values are left
out, and the copy mentions no attribute value that is not in the request. A `FaultPlan` picks,
per request, one of FAULT_KINDS or None::

    with FakeLLMServer(faults=FaultPlan(["http_500", None])) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="test")
        ...
        assert srv.requests == 2
"""

from __future__ import annotations

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

MODEL_ID = "fake-llm"
FAULT_KINDS = ("http_429", "http_500", "http_503", "hang", "drop", "invalid_json", "missing_fields", "overlong",
               "empty", "cut_off")
_STATUS = {"http_429": (429, "Rate limit reached for fake-llm. Please try again later.", "requests",
                        "rate_limit_exceeded"),
           "http_500": (500, "The server had an error while processing your request.", "server_error", None),
           "http_503": (503, "The engine is currently overloaded, please try again later.", "server_error",
                        "service_unavailable")}
_UNSET_VALUES = {"unknown", "", "n/a", "na", "null", "none_specified"}


def _check_kind(kind: str | None) -> str | None:
    if kind is not None and kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
    return kind


class FaultPlan:
    """Which fault (if any) each request gets, checked in this order:

    1. `always_fail_if(attributes)`: a matching product gets `kind`; with `fail_first_n=N` only
       its first N attempts (per distinct attribute set) do, later ones go on to the next rules.
    2. `script`: fault names / None, applied cyclically, one per request.
    3. `rate`: each request faults with probability `rate`, the kind drawn from `kinds` with
       `random.Random(seed)` (reproducible).

    `retry_after` is the Retry-After header of http_429; `hang` stalls `hang_s` seconds (cut short
    when the server stops), then answers normally. Thread-safe.
    """

    def __init__(self, script: Sequence[str | None] | None = None, *, rate: float = 0.0, seed: int | None = None,
                 kinds: Iterable[str] | None = None, always_fail_if: Callable[[dict], bool] | None = None,
                 kind: str = "http_500", fail_first_n: int | None = None, retry_after: str | float | int = "1",
                 hang_s: float = 30.0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        self.kinds = [_check_kind(k) for k in (kinds if kinds is not None else FAULT_KINDS)]
        self.kind = _check_kind(kind)
        self._script = itertools.cycle([_check_kind(k) for k in script]) if script else None
        self.rate, self.always_fail_if, self.fail_first_n = float(rate), always_fail_if, fail_first_n
        self.retry_after, self.hang_s = str(retry_after), float(hang_s)
        self._rng = random.Random(seed)
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def scripted(cls, script: Sequence[str | None], **kw: Any) -> FaultPlan:
        return cls(script, **kw)

    @classmethod
    def random(cls, rate: float, seed: int | None = 0, kinds: Iterable[str] | None = None, **kw: Any) -> FaultPlan:
        return cls(rate=rate, seed=seed, kinds=kinds, **kw)

    @classmethod
    def fail_product(cls, predicate: Callable[[dict], bool], kind: str = "http_500", first_n: int | None = None,
                     **kw: Any) -> FaultPlan:
        return cls(always_fail_if=predicate, kind=kind, fail_first_n=first_n, **kw)

    def decide(self, attrs: Mapping[str, Any] | None = None) -> str | None:
        """The fault for the next request (None: a normal answer)."""
        attrs = dict(attrs or {})
        with self._lock:
            if self.always_fail_if is not None and self.always_fail_if(attrs):
                key = json.dumps(attrs, sort_keys=True, default=str)
                n = self._attempts[key] = self._attempts.get(key, 0) + 1
                if self.fail_first_n is None or n <= self.fail_first_n:
                    return self.kind
            if self._script is not None:
                return next(self._script)
            if self.rate > 0.0:
                hit = self._rng.random() < self.rate  # two draws every time: a stable sequence
                choice = self._rng.choice(self.kinds)
                return choice if hit else None
            return None


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
    if kind == "cut_off":  # a looping answer stopped at max_tokens: the JSON never closes
        return '{"style_summary": "' + "A top, a top, " * 40
    copy = build_copy(attrs)
    if kind == "missing_fields":
        return json.dumps({k: copy[k] for k in ("title", "description", "style_summary")})
    # overlong: a 60-word title and a 20,000-character description
    title = " ".join(itertools.islice(itertools.cycle(copy["title"].split() or ["Garment"]), 60))
    unit = copy["description"] + " "
    return json.dumps(dict(copy, title=title, description=(unit * (20000 // len(unit) + 1))[:20000]))


def _completion(body: Mapping[str, Any], content: str, finish_reason: str = "stop") -> dict:
    prompt_tokens = max(1, sum(len(str(m.get("content") or "")) for m in body.get("messages") or []
                               if isinstance(m, dict)) // 4)
    completion_tokens = max(1, len(content) // 4) if content else 0
    return {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion", "created": int(time.time()),
            "model": str(body.get("model") or MODEL_ID), "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # many concurrent clients without SYN retries
    owner: FakeLLMServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

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
            pass  # the client went away
        self.close_connection = True

    def _error(self, status: int, message: str, etype: str, code: str | None, headers=None) -> None:
        self._send_json(status, {"error": {"message": message, "type": etype, "param": None, "code": code}}, headers)

    def _drop(self) -> None:
        self.close_connection = True
        for close in (lambda: self.connection.shutdown(socket.SHUT_RDWR), self.connection.close):
            try:
                close()
            except OSError:
                pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0].rstrip("/") in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0,
                                                              "owned_by": "fake"}]})
        else:
            self._error(404, f"Unknown path {self.path}", "invalid_request_error", "not_found")

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0].rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"Unknown path {self.path}", "invalid_request_error", "not_found")
            return
        owner = self.server.owner
        try:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (OSError, ValueError):
            body = None
        attrs = extract_attributes(body.get("messages")) if isinstance(body, dict) else {}
        plan = owner.faults
        fault = plan.decide(attrs) if plan is not None else None
        owner._record(fault, body, attrs, self.headers)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._error(400, "Request body must be JSON with a 'messages' list", "invalid_request_error",
                        "invalid_body")
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
        if fault in _STATUS:
            headers = {"Retry-After": plan.retry_after} if fault == "http_429" else None
            self._error(*_STATUS[fault], headers)
            return
        if fault == "drop" or (fault == "hang" and owner._stopping.wait(plan.hang_s)):
            self._drop()  # a dropped connection, or a server stopping during a hang: give up at once
            return
        if fault in ("invalid_json", "missing_fields", "overlong", "empty", "cut_off"):
            content = _fault_content(fault, attrs)
        else:  # no fault, or a hang that outlasted hang_s: a normal answer, late
            content = json.dumps(build_copy(attrs, requested_language(body.get("messages"))))
            if owner.fenced and fault is None:
                content = "Here is the copy:\n```json\n" + content + "\n```"
        self._send_json(200, _completion(body, content, "length" if fault == "cut_off" else "stop"))


class FakeLLMServer:
    """A real HTTP server speaking the OpenAI chat-completions API; use it with `with`.

    reject_response_format=("json_schema",): answer 400 to that kind, as Ollama's /v1 and some
    gateways do (LM Studio, in turn, refuses "json_object"); fenced: wrap the JSON in a ```json
    block, as models do when no response_format holds them; reject_message: that 400's message
    instead (one that does not name the response format); latency_s: every answer that late."""

    def __init__(self, faults: FaultPlan | None = None, latency_s: float = 0.0, *,
                 reject_response_format: tuple[str, ...] = (), reject_message: str | None = None,
                 fenced: bool = False) -> None:
        self.faults, self.latency_s = faults, float(latency_s)
        self.reject_response_format, self.reject_message, self.fenced = (tuple(reject_response_format),
                                                                          reject_message, fenced)
        self.port = 0
        self._lock = threading.Lock()
        self._log: list[dict] = []
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeLLMServer:
        self._stopping.clear()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeLLMServer:{self.port}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes hanging and late answers at once
        httpd.shutdown()
        httpd.server_close()
        self._thread.join(timeout=1.0)

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self.port}/v1"

    def _record(self, fault: str | None, body: Any, attrs: dict, headers: Mapping[str, str]) -> None:
        with self._lock:
            self._log.append({"time": time.monotonic(), "fault": fault, "body": body, "attrs": attrs,
                              "headers": {k.lower(): v for k, v in headers.items()}})

    @property
    def requests(self) -> int:
        """Number of POST /v1/chat/completions received."""
        with self._lock:
            return len(self._log)

    @property
    def request_log(self) -> list[dict]:
        """A copy of the per-request log: {"time", "fault", "body", "attrs", "headers"}."""
        with self._lock:
            return list(self._log)

    def faults_applied(self) -> list[str | None]:
        return [e["fault"] for e in self.request_log]
