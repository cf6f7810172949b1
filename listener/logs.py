"""Log lines: JSON when stderr is not a terminal (a container, systemd's journal, a pipe), readable
text when it is; `log_format = "auto" | "json" | "text"` in `config.toml` decides otherwise.

A JSON line is one object: `time` (UTC, ISO 8601), `level`, `logger`, `message`, the traceback
as `exc_info` when there is one, and whatever fields the call passed as `extra=`: the daemon's
one line per poll carries `event: "poll"`, `source`, `searches`, `fetched`, `new`, `alerts`,
`follow_ups`, `silenced`, `skipped`, `duration_s` and `error`.

Secrets are never logged: the code logs no credential, and as a second line of defence every
line is scrubbed, in both formats, of the values of the environment variables that hold secrets
(those the configuration names in a `*_env` setting, and those whose name says TOKEN, SECRET,
PASSWORD, API_KEY, …) and of any password in a URL in the environment (`LISTENER_DATABASE`):
each becomes `***`. Values shorter than `MIN_SECRET` characters are left alone; they would
scrub ordinary words.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

__all__ = [
    "MIN_SECRET",
    "JsonLines",
    "TextLines",
    "build_handler",
    "config_secret_names",
    "secret_values",
    "setup_logging",
    "use_json",
]

LogFormat = Literal["auto", "json", "text"]

MIN_SECRET = 6
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Their info lines repeat ours (or are noise); their warnings still show.
NOISY = ("apscheduler", "httpx", "httpcore", "alembic")

_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|PRIVATE_?KEY|CREDENTIAL|BEARER|_DSN$",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"://[^/\s:@]*:([^@\s/]+)@")


def config_secret_names(config: Any) -> set[str]:
    """The environment variables a loaded `Config` reads secrets from: every `*_env` setting of
    `config.toml` and of the receivers."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str) and key.endswith("_env") and isinstance(item, str):
                    names.add(item)
                else:
                    walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(config.main.model_dump())
    for receiver in config.receivers.values():
        walk(receiver.model_dump())
    return names


def secret_values(env: Mapping[str, str], names: Iterable[str] = ()) -> list[str]:
    """The secrets in `env` (see the module docstring), longest first."""
    wanted = set(names)
    found: set[str] = set()
    for name, value in env.items():
        if name in wanted or _SECRET_NAME.search(name):
            found.add(value.strip())
        found.update(match.group(1) for match in _URL_PASSWORD.finditer(value))
    return sorted((v for v in found if len(v) >= MIN_SECRET), key=len, reverse=True)


class _Scrubbing:
    """Replaces each secret in a formatted line by `***` (also as JSON escapes it)."""

    secrets: Sequence[str] = ()

    def scrub(self, line: str) -> str:
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, "***")
            escaped = json.dumps(secret)[1:-1]
            if escaped != secret and escaped in line:
                line = line.replace(escaped, "***")
        return line


class JsonLines(_Scrubbing, JsonFormatter):
    """One JSON object a line; see the module docstring."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            json_ensure_ascii=False,
        )
        self.secrets = list(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self.scrub(super().format(record))


class TextLines(_Scrubbing, logging.Formatter):
    """`2026-11-23 09:40:00,123 INFO listener.daemon: poll …`: for a person at a terminal."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        super().__init__(TEXT_FORMAT)
        self.secrets = list(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return self.scrub(super().format(record))


def use_json(log_format: LogFormat, stream: TextIO) -> bool:
    """JSON unless asked for text, or `auto` and the stream is a terminal."""
    if log_format != "auto":
        return log_format == "json"
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return True


def build_handler(
    log_format: LogFormat = "auto", stream: TextIO | None = None, secrets: Sequence[str] = ()
) -> logging.Handler:
    """A handler writing to `stream` (stderr) in the format `log_format` chooses."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    formatter = JsonLines(secrets) if use_json(log_format, stream) else TextLines(secrets)
    handler.setFormatter(formatter)
    return handler


def setup_logging(
    level: str,
    log_format: LogFormat = "auto",
    *,
    env: Mapping[str, str],
    secret_names: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Log to stderr (or `stream`) at `level`, as JSON or text, scrubbing the secrets of `env`.
    Like `logging.basicConfig`, it leaves a root logger that already has handlers of someone
    else's (a test runner's) alone, but it replaces its own from an earlier call."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_listener", False)]
    if len(ours) < len(root.handlers):
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = build_handler(log_format, stream, secret_values(env, secret_names))
    handler._listener = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
