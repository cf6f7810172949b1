"""Slack incoming-webhook notifier: one POST of Block Kit JSON per alert to a webhook URL.

For a team that cannot install a bot: an incoming webhook posts into the one channel it was made
for. The message is the bot notifier's (`listener.notify.slack.build_blocks` and
`fallback_text`), so untrusted text is just as inert (post text and author in `plain_text`,
every mrkdwn string escaped), minus the feedback controls: a webhook message cannot send clicks
back to listener. The 'Open post' link button stays (it only opens the post). There is no
thread either: Slack does not say where a webhook's message went, so a follow-up is a message
of its own that says which alert it follows.

The webhook URL is the secret (whoever has it can post): it comes from the environment variable
`url_env` and is shown masked (`https://hooks.slack.com/…abcd`) in repr, errors and logs.
Errors are classified by `listener.notify.webhook.post_json`: network trouble, HTTP 429 (with
its Retry-After) and 5xx are transient; other answers such as 400 `invalid_payload`, 403
`action_prohibited`, 404 `no_service` or 410 `channel_is_archived` are permanent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from listener.alert import AlertMessage
from listener.config.model import MainFile, Receiver
from listener.notify.slack import build_blocks, fallback_text
from listener.notify.webhook import (
    http_url,
    keep_out_of_logs,
    make_client,
    mask_url,
    post_json,
    url_secrets,
)


def message(alert: AlertMessage) -> dict[str, Any]:
    """The JSON an incoming webhook takes: fallback text, blocks without feedback controls."""
    blocks = build_blocks(replace(alert, branch_choices=None))
    return {
        "text": fallback_text(alert),
        "blocks": [block.to_dict() for block in blocks],
        "unfurl_links": False,
        "unfurl_media": False,
    }


class SlackWebhookNotifier:
    """Posts alerts to the channel of one Slack incoming webhook."""

    def __init__(self, url: str, *, client: httpx.Client | None = None, name: str = "") -> None:
        self.name = name or "slack_webhook"
        self._url = url
        self._masked_url = mask_url(url)
        self._secrets = url_secrets(url)
        self._client = client or make_client()
        keep_out_of_logs(*self._secrets)

    @classmethod
    def from_receiver(
        cls,
        receiver: Receiver,
        main: MainFile,
        *,
        templates_dir: Path,
        env: Mapping[str, str],
        console: Console | None = None,
    ) -> SlackWebhookNotifier:
        inactive = f"slack_webhook receiver {receiver.id!r} inactive"
        assert receiver.url_env is not None  # Receiver's validator requires it
        timeout = main.slack.timeout.total_seconds() if main.slack is not None else None
        client = make_client(timeout) if timeout is not None else None
        return cls(http_url(env, receiver.url_env, inactive), client=client, name=receiver.id)

    def __repr__(self) -> str:
        return f"SlackWebhookNotifier(name={self.name!r}, url={self._masked_url!r})"

    def send(self, alert: AlertMessage) -> str | None:
        body = json.dumps(message(alert), ensure_ascii=False).encode("utf-8")
        post_json(
            self._client,
            self._url,
            body,
            {},
            where=f"slack incoming webhook {self._masked_url}",
            secrets=self._secrets,
        )
        return None
