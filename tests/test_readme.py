"""The README and docs/ stay true to the CLI: every `catalog-intel` sub-command and flag they name exists, every flag
the CLI has is documented, every relative link resolves, and the README stays short."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from catalog_intel.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").rglob("*.md"))
NESTED = {"models", "cache"}  # sub-commands with sub-commands of their own


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    return dict(actions[0].choices) if actions else {}


def _parser_for(words: list[str]) -> argparse.ArgumentParser | None:
    parser = build_parser()
    for word in words:
        parser = _subparsers(parser).get(word)
        if parser is None:
            return None
    return parser


def _shell_text(markdown: str) -> str:
    """Code blocks other than sample output (```text), and inline code spans of the prose."""
    blocks = re.findall(r"```(\w*)\n(.*?)```", markdown, flags=re.S)
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    code = [body.replace("\\\n", " ") for lang, body in blocks if lang != "text"]
    return "\n".join(code + re.findall(r"`([^`\n]+)`", prose))


def commands(markdown: str) -> list[tuple[list[str], list[str], str]]:
    """(sub-command path, flags, the command's text) for each `catalog-intel ...` command."""
    found = []
    for match in re.finditer(r"(?:^|[\s/`])catalog-intel ([a-z][a-z-]*)([^\n#]*)", _shell_text(markdown), flags=re.M):
        words, rest = [match[1]], match[2]
        if match[1] in NESTED:
            sub = re.match(r"\s*([a-z][a-z-]*)", rest)
            if sub:
                words.append(sub[1])
        flags = re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", rest)
        found.append((words, flags, match[0].strip()))
    return found


def _documents() -> list[Path]:
    return [README, *DOCS]


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_and_flag_named_exists(path):
    text = path.read_text(encoding="utf-8")
    problems = []
    for words, flags, line in commands(text):
        parser = _parser_for(words)
        if parser is None:
            problems.append(f"`catalog-intel {' '.join(words)}` is not a sub-command: {line}")
            continue
        known = set(parser._option_string_actions)  # noqa: SLF001
        problems += [f"{flag} is not an option of `catalog-intel {' '.join(words)}`: {line}"
                     for flag in flags if flag not in known]
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_readme_names_commands():
    """The extraction itself works: the README's demo, run and search commands are found."""
    named = {" ".join(words) for words, _, _ in commands(README.read_text(encoding="utf-8"))}
    assert {"demo", "run", "similar", "search", "models list", "cache compact"} <= named


def test_every_cli_flag_is_documented():
    """No flag of any sub-command goes undocumented: each appears in the README or a docs/ page."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in _documents())
    missing = []

    def walk(parser, words):
        subs = _subparsers(parser)
        for name, sub in subs.items():
            walk(sub, [*words, name])
        if not subs:
            for flag in parser._option_string_actions:  # noqa: SLF001
                if flag.startswith("--") and flag != "--help" and flag not in text:
                    missing.append(f"catalog-intel {' '.join(words)} {flag}")

    walk(build_parser(), [])
    assert not missing, "flags documented nowhere (README.md or docs/):\n" + "\n".join(missing)


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 300, f"README.md has {lines} lines; at most 300 (guides go in docs/)"


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a markdown file."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto, file
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, f"{path.name}:\n" + "\n".join(broken)


def test_architecture_names_every_module_and_only_those():
    """docs/architecture.md's layout names every module of catalog_intel/ (by file or folder name), and every module
    file it names exists: the layout cannot drift from the code."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    layout = re.search(r"```text\n(.*?)```", text, flags=re.S)[1]
    package = ROOT / "catalog_intel"
    modules = {p for p in package.rglob("*.py") if p.name != "__init__.py" and "vendor" not in p.parts}
    unnamed = [str(p.relative_to(ROOT)) for p in sorted(modules)
               if not re.search(rf"(?<![\w.]){re.escape(p.name)}", layout)
               and not re.search(rf"(?<![\w.]){re.escape(p.parent.name)}/ \([^)]*\b{p.stem}\b", layout)]
    assert not unnamed, "modules docs/architecture.md does not name:\n" + "\n".join(unnamed)
    known = {p.name for p in modules}
    known |= {p.name for folder in ("bench", "tests", "flows") for p in (ROOT / folder).glob("*.py")}
    stale = sorted(set(re.findall(r"\b(\w+\.py)\b", layout)) - known)
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"
