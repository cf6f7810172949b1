"""Find the line of a key in a TOML file, so errors can say `file:line: field`.

`tomllib` parses without positions. `KeyLines` scans the source once and records the line of every
table header, array-of-tables element and `key = value` it can see, under the same path pydantic
uses for errors: `("organisations", 0, "branches", 2, "lat")`. It understands the forms people
write in listener's files: `[table]`, `[[array]]` (nested too), dotted keys, and inline tables in
multi-line arrays (`branches = [ {id = "x", ...}, ... ]`). For anything else it falls back to the
nearest enclosing path it knows, which still points at the right place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_INLINE_KEY = re.compile(r"""(?:^|[{,])\s*([A-Za-z0-9_\-]+)\s*=""")


def _split_dotted(key: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'""", key)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def _strip_strings(line: str) -> str:
    """Blank out string contents and comments so brackets inside them are not counted."""
    out = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)
    out = re.sub(r"'[^']*'", "''", out)
    return out.split("#", 1)[0]


class KeyLines:
    """Line numbers (1-based) of the keys in one TOML text."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        self._scan(text.splitlines())

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return None

    def _scan(self, lines: list[str]) -> None:
        table: Path = ()
        counts: dict[Path, int] = {}
        in_multiline: str | None = None
        array_path: Path | None = None
        depth = 0
        element = -1
        for number, raw in enumerate(lines, start=1):
            if in_multiline:
                if in_multiline in raw:
                    in_multiline = None
                continue
            if array_path is not None:
                cleaned = _strip_strings(raw)
                if "{" in cleaned and depth == 1:
                    element += 1
                    self.lines.setdefault((*array_path, element), number)
                if element >= 0:
                    for key in _INLINE_KEY.findall(cleaned):
                        self.lines.setdefault((*array_path, element, key), number)
                depth += cleaned.count("[") - cleaned.count("]")
                if depth <= 0:
                    array_path = None
                continue
            header = _HEADER.match(raw)
            if header:
                parts = _split_dotted(header.group(2))
                resolved: list[str | int] = []
                for i, part in enumerate(parts):
                    resolved.append(part)
                    prefix = tuple(resolved)
                    is_last = i == len(parts) - 1
                    if is_last and header.group(1) == "[[":
                        index = counts.get(prefix, 0)
                        counts[prefix] = index + 1
                        resolved.append(index)
                    elif not is_last and prefix in counts:
                        resolved.append(counts[prefix] - 1)
                table = tuple(resolved)
                self.lines.setdefault(table, number)
                continue
            key_match = _KEY.match(raw)
            if not key_match:
                continue
            path = (*table, *_split_dotted(key_match.group(1)))
            self.lines.setdefault(path, number)
            value = raw[key_match.end() :]
            for quote in ('"""', "'''"):
                if value.count(quote) == 1:
                    in_multiline = quote
            cleaned = _strip_strings(value)
            opened = cleaned.count("[") - cleaned.count("]")
            if cleaned.strip().startswith("[") and opened > 0:
                array_path, depth, element = path, opened, -1
                if "{" in cleaned:
                    element = 0
                    self.lines.setdefault((*path, 0), number)
            elif cleaned.strip().startswith("[") and "{" in cleaned:
                # a one-line array of inline tables: every element on this line
                for i in range(cleaned.count("{")):
                    self.lines.setdefault((*path, i), number)
