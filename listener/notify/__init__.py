"""Notifiers: deliver one `AlertMessage` to one receiver (console, Slack with a bot token or an
incoming webhook, email, or a generic signed JSON webhook).

Every notifier has one method, `send(alert)`, which returns an external reference (Slack's
"channel:ts", an email's Message-ID) or None, and raises `TransportError` when the receiver did not
accept the alert. Each notifier translates its own library's errors at that one boundary and says
whether a retry can help:

    Exception
    ├── TransportError(message, permanent, retry_after)   send() failed
    │     permanent=False: network, timeout, HTTP 429/5xx, SMTP 4xx   → retry with backoff
    │     permanent=True:  bad token, unknown channel, other HTTP 4xx, SMTP 5xx, …
    │                                                                 → mark failed, show reason
    └── NotifierUnavailable   build_notifier(): settings or secret missing, receiver inactive

Optional methods, used when a notifier has them (the outbox checks with `getattr`):

- `send_digest(digest: Digest) -> str | None`: one message for a `listener.alert.Digest`, same
  errors as `send`. Every notifier has it.
- `find_sent(alert: AlertMessage) -> str | None`: the reference of a message this receiver already
  shows for the alert (Slack: looked up by the message metadata's idempotency key), asked before
  re-sending after an attempt whose outcome is unknown (a timeout, a crash mid-send).
- `update_parent(parent: AlertMessage, ref: str, progress: Progress) -> None`: re-render the
  message `ref` of `parent` after a follow-up went into its thread or someone acknowledged it.

The idempotency key of a delivery is `idempotency_key(alert_id, receiver)`: "alert-12:webcare";
a digest's is "digest-3:webcare".

`build_notifier` turns a configured `Receiver` into a notifier. Integrations are imported lazily
from `_REGISTRY`, so a console-only install never imports slack_sdk or smtplib. Secrets come from
the environment (names in config) and never appear in a notifier's repr or in error messages.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console

    from listener.alert import AlertMessage
    from listener.config.model import MainFile, Receiver

__all__ = [
    "Notifier",
    "NotifierUnavailable",
    "TransportError",
    "build_notifier",
    "follow_up_line",
    "headline",
    "idempotency_key",
    "mask_secret",
    "scrub",
]


class TransportError(Exception):
    """The receiver did not accept the alert; `permanent` says whether retrying is pointless."""

    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"TransportError({self.message!r}, permanent={self.permanent}, "
            f"retry_after={self.retry_after})"
        )


def idempotency_key(alert_id: int, receiver: str, *, digest: bool = False) -> str:
    """'alert-12:webcare-slack' (or 'digest-3:webcare-mail'): one per message and receiver."""
    return f"{'digest' if digest else 'alert'}-{alert_id}:{receiver}"


class NotifierUnavailable(Exception):
    """A receiver that cannot work: its settings section or its secret is missing."""


class Notifier(Protocol):
    def send(self, alert: AlertMessage) -> str | None:
        """Deliver one alert; return an external reference or None; raise `TransportError`."""
        ...


# receiver type -> "module:Class"; each class has a `from_receiver(...)` classmethod.
_REGISTRY: dict[str, str] = {
    "console": "listener.notify.console:ConsoleNotifier",
    "slack": "listener.notify.slack:SlackNotifier",
    "slack_webhook": "listener.notify.slack_webhook:SlackWebhookNotifier",
    "email": "listener.notify.email:EmailNotifier",
    "webhook": "listener.notify.webhook:WebhookNotifier",
}


def build_notifier(
    receiver: Receiver,
    main: MainFile,
    templates_dir: Path,
    env: Mapping[str, str] | None = None,
    console: Console | None = None,
) -> Notifier:
    """The notifier for `receiver`, or `NotifierUnavailable` saying what is missing."""
    target = _REGISTRY.get(receiver.type)
    if target is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"receiver {receiver.id!r}: unknown type {receiver.type!r} ({known})")
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    notifier: Notifier = cls.from_receiver(
        receiver,
        main,
        templates_dir=Path(templates_dir),
        env=os.environ if env is None else env,
        console=console,
    )
    return notifier


def secret_from_env(env: Mapping[str, str], name: str, inactive: str, needed_for: str = "") -> str:
    """The secret in environment variable `name`, or NotifierUnavailable saying what is wrong
    ("slack receiver 'x' inactive: environment variable SLACK_BOT_TOKEN is not set")."""
    value = env.get(name, "").strip()
    if not value:
        state = "is empty" if name in env else "is not set"
        raise NotifierUnavailable(f"{inactive}: environment variable {name} {state}{needed_for}")
    return value


def mask_secret(secret: str | None) -> str:
    """'xoxb-…abcd': enough to tell two secrets apart, never enough to use one."""
    if not secret:
        return "<unset>"
    prefix = secret[:5] if secret.startswith(("xoxb-", "xoxp-", "xapp-")) else ""
    tail = secret[-4:] if len(secret) >= 16 else ""
    return f"{prefix}…{tail}"


def scrub(text: str, *secrets: str | None) -> str:
    """`text` with every occurrence of each secret replaced by '***' (for server-sent messages)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


LEVEL_ICONS: dict[str, str] = {"critical": "🔴", "high": "🟠", "normal": "🟡", "low": "⚪"}


def headline(alert: AlertMessage) -> str:
    """'🔴 CRITICAL · Bibliotheek Eemland / Vathorst': the first line every medium shows
    ('🟠 HIGH · INCIDENT · …' for an incident)."""
    icon = LEVEL_ICONS.get(alert.level, "🔔")
    kind = " · INCIDENT" if alert.incident is not None else ""
    return f"{icon} {alert.level.upper()}{kind} · {alert.where}"


FOLLOW_UP_WORDS: dict[str, str] = {
    "reply": "reply to",
    "duplicate": "repost or near-duplicate of",
    "spike": "one more post of incident",
    "reach": "reach growing fast on",
    "escalation": "not acknowledged in time: escalation of",
}


def follow_up_line(alert: AlertMessage) -> str:
    """'↳ reply to alert #12' (unescaped: only listener's own words and numbers), or ''."""
    follow = alert.follow_up
    if follow is None:
        return ""
    words = FOLLOW_UP_WORDS.get(follow.kind, "follow-up of")
    noun = "" if follow.kind == "spike" else "alert "
    return f"↳ {words} {noun}#{follow.parent_alert_id}"
