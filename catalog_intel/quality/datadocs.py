"""Make a Great Expectations 1.x Data Docs site viewable offline.

GX 1.x pages load Bootstrap, jQuery, bootstrap-table, Font Awesome, ... from CDNs and the
logo from S3, so offline they render unstyled. `make_site_offline` copies the assets
vendored in ``catalog_intel/quality/vendor/datadocs/`` (see SOURCES.txt there) into
``<site>/static/vendor/`` and rewrites every page to use them.

HTML is located with the standard library's ``html.parser`` (bs4 / lxml / html5lib are not
dependencies): the parser finds each tag and its exact source offsets, and only those
spans are replaced, so the rest of every page stays byte-for-byte as GX wrote it.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

log = logging.getLogger(__name__)

VENDOR_DIR = Path(__file__).resolve().parent / "vendor" / "datadocs"
SITE_VENDOR = "static/vendor"  # where the assets go inside the site, relative to its root
OFFLINE_CSS = "offline/datadocs-offline.css"
LOCAL_LOGO = "static/images/logo-long.png"  # shipped by GX in every site's static folder

_DROP = None  # marker: remove the element, nothing replaces it

# Remote asset URL (matched anywhere in the URL, first match wins; versions are ignored)
# -> path under the vendor folder, or _DROP.
_ASSET_MAP: list[tuple[re.Pattern[str], str | None]] = [
    (re.compile(p, re.I), target)
    for p, target in [
        (r"filter-control[^?#]*\.css", "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.css"),
        (r"filter-control[^?#]*\.js", "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.js"),
        (r"bootstrap-table[^?#]*\.css", "bootstrap-table/bootstrap-table.min.css"),
        (r"bootstrap-table[^?#]*\.js", "bootstrap-table/bootstrap-table.min.js"),
        (r"bootstrap-datepicker[^?#]*\.css", "bootstrap-datepicker/bootstrap-datepicker.min.css"),
        (r"bootstrap-datepicker[^?#]*\.js", "bootstrap-datepicker/bootstrap-datepicker.min.js"),
        (r"bootstrap-prefers-dark[^?#]*\.css", "bootstrap-dark/bootstrap-prefers-dark.min.css"),
        (r"bootstrap[^?#]*/bootstrap(\.min)?\.css", "bootstrap/bootstrap.min.css"),
        (r"bootstrap[^?#]*/bootstrap(\.bundle)?(\.min)?\.js", "bootstrap/bootstrap.min.js"),
        (r"font-?awesome[^?#]*\.css", "fontawesome/css/fontawesome-solid.min.css"),
        (r"jquery[^?#]*\.js", "jquery/jquery.min.js"),
        (r"popper[^?#]*\.js", "popper.js/popper.min.js"),
        (r"vega-(lite|embed)", _DROP),
        (r"/vega(@|/|$)", "offline/vega-offline.js"),  # stand-in defining vegaEmbed()
    ]
]

_REMOTE = re.compile(r"^\s*(https?:)?//", re.I)
_CSS_REMOTE_URL = re.compile(r"""url\(\s*(['"]?)\s*(https?:)?//[^)]*?\1\s*\)""", re.I)
_LOCAL_STATIC = re.compile(r"^(\./|(\.\./)+)?(static/[^?#]+)$")
_NEWSLETTER = re.compile(r"greatexpectations\.io/newsletter", re.I)


def _is_remote(url: str | None) -> bool:
    return bool(url) and bool(_REMOTE.match(url))


def _map_asset(url: str) -> tuple[bool, str | None]:
    """(known, vendor path or None to drop)."""
    for pattern, target in _ASSET_MAP:
        if pattern.search(url):
            return True, target
    return False, None


@dataclass
class _Tag:
    name: str
    attrs: list[tuple[str, str | None]]
    start: int
    end: int
    self_closing: bool

    def get(self, key: str) -> str | None:
        for k, v in self.attrs:
            if k == key:
                return v
        return None


class _Scan(HTMLParser):
    """Records start and end tags with their exact source offsets in `text`."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text = text
        self.tags: list[_Tag] = []
        self.ends: list[tuple[str, int, int]] = []  # (name, start, end)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def _offset(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def handle_starttag(self, tag, attrs):
        raw = self.get_starttag_text() or ""
        start = self._offset()
        self.tags.append(_Tag(tag, list(attrs), start, start + len(raw), raw.rstrip().endswith("/>")))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        start = self._offset()
        close = self.text.find(">", start)
        self.ends.append((tag, start, (close + 1) if close >= 0 else len(self.text)))


def _serialize(tag: _Tag, attrs: list[tuple[str, str | None]]) -> str:
    parts = [tag.name]
    for k, v in attrs:
        parts.append(k if v is None else f'{k}="{html.escape(v, quote=True)}"')
    return "<" + " ".join(parts) + ("/>" if tag.self_closing else ">")


def _set_attrs(tag: _Tag, changes: dict[str, str | None], strip_sri: bool = True) -> str:
    """Re-serialize `tag` with `changes` applied (value None deletes the attribute)."""
    drop = {"integrity", "crossorigin"} if strip_sri else set()
    out = []
    for k, v in tag.attrs:
        if k in drop:
            continue
        if k in changes:
            if changes[k] is not None:
                out.append((k, changes[k]))
            continue
        out.append((k, v))
    return _serialize(tag, out)


def _whole_lines(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen [start, end) to its full line(s) when nothing else sits on them."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    if text[line_start:start].strip() == "" and text[end:line_end].strip() == "":
        return line_start, min(line_end + 1, len(text))
    return start, end


class _Page:
    def __init__(self, site: Path, path: Path) -> None:
        self.site = site
        self.path = path
        depth = len(path.relative_to(site).parts) - 1
        self.prefix = "../" * depth  # from this page back to the site root
        self.has_local_logo = (site / LOCAL_LOGO).is_file()

    def vendor_url(self, vendor_path: str) -> str:
        return f"{self.prefix}{SITE_VENDOR}/{vendor_path}"

    def rewrite(self, text: str) -> str:
        scan = _Scan(text)
        scan.feed(text)
        scan.close()
        edits: list[tuple[int, int, str]] = []

        # Pair <script>, <style> and <footer> start tags with their end tags, in document order.
        events = sorted(
            [(t.start, "start", t) for t in scan.tags] + [(s, "end", (n, s, e)) for n, s, e in scan.ends],
            key=lambda x: x[0],
        )
        open_script: _Tag | None = None
        open_style: _Tag | None = None
        footers: list[list] = []  # stack of [start_tag, has_newsletter]
        drop_scripts: set[int] = set()
        head_end: int | None = None
        offline_css_present = False

        for _, kind, item in events:
            if kind == "start":
                tag: _Tag = item
                if tag.name == "script":
                    open_script = tag
                    self._script(tag, edits, drop_scripts)
                elif tag.name == "style":
                    open_style = tag
                elif tag.name == "footer":
                    footers.append([tag, False])
                elif tag.name == "a" and _NEWSLETTER.search(tag.get("href") or "") and footers:
                    footers[-1][1] = True
                elif tag.name == "link":
                    if (tag.get("href") or "").endswith(f"{SITE_VENDOR}/{OFFLINE_CSS}"):
                        offline_css_present = True
                    self._link(tag, edits)
                elif tag.name == "img":
                    self._img(tag, edits)
                elif _is_remote(tag.get("src")):
                    edits.append((tag.start, tag.end, _set_attrs(tag, {"src": None}, strip_sri=False)))
                if tag.get("style") and _CSS_REMOTE_URL.search(tag.get("style") or ""):
                    # (not combined with the edits above: GX puts no remote url() in those tags)
                    if not any(e[0] == tag.start for e in edits):
                        new_style = _CSS_REMOTE_URL.sub("none", tag.get("style") or "")
                        edits.append((tag.start, tag.end, _set_attrs(tag, {"style": new_style}, strip_sri=False)))
            else:
                name, s, e = item
                if name == "script" and open_script is not None:
                    if open_script.start in drop_scripts:
                        edits = [x for x in edits if x[0] != open_script.start]
                        edits.append((*_whole_lines(text, open_script.start, e), ""))
                    open_script = None
                elif name == "style" and open_style is not None:
                    body = text[open_style.end:s]
                    new_body = _CSS_REMOTE_URL.sub("none", body)
                    if new_body != body:
                        edits.append((open_style.end, s, new_body))
                    open_style = None
                elif name == "footer" and footers:
                    start_tag, newsletter = footers.pop()
                    if newsletter:
                        edits = [x for x in edits if not (start_tag.start <= x[0] < e)]
                        edits.append((*_whole_lines(text, start_tag.start, e), ""))
                elif name == "head" and head_end is None:
                    head_end = s

        if not offline_css_present and head_end is not None:
            link = f'<link rel="stylesheet" href="{self.vendor_url(OFFLINE_CSS)}"/>'
            line_start = text.rfind("\n", 0, head_end) + 1
            indent = text[line_start:head_end]
            if indent.strip() == "":  # `</head>` on its own line: add ours as the line above it
                edits.append((line_start, line_start, f"{indent}  {link}\n"))
            else:
                edits.append((head_end, head_end, link))

        if not edits:
            return text
        out = text
        for start, end, new in sorted(edits, key=lambda x: (x[0], x[1]), reverse=True):
            out = out[:start] + new + out[end:]
        return out

    # -- per-tag rules -------------------------------------------------------------
    def _script(self, tag: _Tag, edits: list, drop_scripts: set[int]) -> None:
        src = tag.get("src")
        if _is_remote(src):
            known, target = _map_asset(src)
            if not known:
                log.warning("Data Docs: dropping unknown remote script %s", src)
            if target is None:
                drop_scripts.add(tag.start)
                edits.append((tag.start, tag.end, ""))  # replaced by whole-element removal at </script>
            else:
                edits.append((tag.start, tag.end, _set_attrs(tag, {"src": self.vendor_url(target)})))
        elif src:
            self._fix_static(tag, "src", edits)

    def _link(self, tag: _Tag, edits: list) -> None:
        href = tag.get("href")
        if _is_remote(href):
            rel = (tag.get("rel") or "").lower().split()
            known, target = _map_asset(href) if "stylesheet" in rel else (False, None)
            if target is None:
                if "stylesheet" in rel and not known:
                    log.warning("Data Docs: dropping unknown remote stylesheet %s", href)
                edits.append((tag.start, tag.end, ""))
            else:
                edits.append((tag.start, tag.end, _set_attrs(tag, {"href": self.vendor_url(target)})))
        elif href:
            self._fix_static(tag, "href", edits)

    def _img(self, tag: _Tag, edits: list) -> None:
        src = tag.get("src")
        if _is_remote(src):
            if self.has_local_logo and "logo" in (src or "").lower():
                new = _set_attrs(tag, {"src": self.prefix + LOCAL_LOGO})
            else:
                label = tag.get("alt") or ""
                new = f'<span class="catalog-intel-logo-text">{html.escape(label)}</span>' if label else ""
            edits.append((tag.start, tag.end, new))
        elif src:
            self._fix_static(tag, "src", edits)

    def _fix_static(self, tag: _Tag, attr: str, edits: list) -> None:
        """Repair a relative ``static/...`` reference whose depth is wrong (GX writes the
        favicon link of validation pages one ``../`` short)."""
        value = tag.get(attr) or ""
        m = _LOCAL_STATIC.match(value)
        if not m or (self.path.parent / value).is_file():
            return
        if (self.site / m.group(3)).is_file():
            edits.append((tag.start, tag.end, _set_attrs(tag, {attr: self.prefix + m.group(3)}, strip_sri=False)))


def _copy_vendor(site: Path) -> None:
    dest = site / SITE_VENDOR
    shutil.copytree(VENDOR_DIR, dest, dirs_exist_ok=True)


def make_site_offline(site_dir: str | Path) -> int:
    """Vendor CDN assets into ``site_dir/static/vendor/`` and point every page at them.

    Rewrites each ``*.html`` under `site_dir`: remote stylesheets and scripts become
    relative links to the local copies (``integrity``/``crossorigin`` removed), the vega
    chart libraries are replaced by a small stand-in, the S3 logo becomes the site's own
    ``static/images/logo-long.png``, remote ``url(...)`` in inline CSS is blanked, the
    newsletter footer is removed, and wrong-depth ``static/`` links are repaired. Also
    blanks remote ``url(...)`` in the site's own ``static/**/*.css`` (not under vendor/).

    Returns the number of files changed (HTML pages plus CSS files); 0 when the site is
    already offline, so running it twice is harmless.
    """
    site = Path(site_dir)
    if not site.is_dir():
        raise FileNotFoundError(f"Data Docs site not found: {site}")
    _copy_vendor(site)
    changed = 0
    for page in sorted(site.rglob("*.html")):
        if SITE_VENDOR in page.relative_to(site).as_posix():
            continue
        text = page.read_bytes().decode("utf-8")
        new = _Page(site, page).rewrite(text)
        if new != text:
            page.write_bytes(new.encode("utf-8"))
            changed += 1
    static = site / "static"
    vendor = site / SITE_VENDOR
    for css in sorted(static.rglob("*.css")) if static.is_dir() else []:
        if vendor in css.parents:
            continue
        text = css.read_bytes().decode("utf-8", errors="surrogateescape")
        new = _CSS_REMOTE_URL.sub("none", text)
        if new != text:
            css.write_bytes(new.encode("utf-8", errors="surrogateescape"))
            changed += 1
    return changed
