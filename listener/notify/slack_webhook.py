"""Slack incoming-webhook notifier: one POST of Block Kit JSON per alert to a webhook URL.

For a team that cannot install a bot: an incoming webhook posts into the one channel it was made
for. The message is the bot notifier's (`listener.notify.slack.build_blocks` and
`fallback_text`), so untrusted text is just as inert (post text and author in `plain_text`,
every mrkdwn string escaped), minus the controls that send clicks back to listener, which a
webhook message cannot do (feedback, 'Acknowledge'). The 'Open post' link button stays (it only
opens the post). There is no thread either: Slack does not say where a webhook's message went,
so a follow-up is a message of its own that says which alert it follows. For the same reason
there is no `find_sent` or `update_parent`: a webhook's message cannot be found or edited.

`send_digest` posts a `listener.alert.Digest` as the bot notifier's digest message
(`listener.notify.slack.digest_blocks`: the oldest 45 alerts, each plain_text with an 'Open'
link button, then how many more per level).

The webhook URL is the secret (whoever has it can post): it comes from the environment variable
`url_env` and is shown masked (`https://hooks.slack.com/…abcd`) in repr, errors and logs.
Errors are classified by `listener.notify.webhook.post_json`: network trouble, HTTP 429 (with
its Retry-After) and 5xx are transient; other answers such as 400 `invalid_payload`, 403
`action_prohibited`, 404 `no_service` or 410 `channel_is_archived` are permanent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from listener.alert import AlertMessage, Digest
from listener.config.model import MainFile, Receiver
from listener.notify.slack import (
    build_blocks,
    digest_blocks,
    digest_fallback_text,
    fallback_text,
)
from listener.notify.webhook import (
    http_url,
    keep_out_of_logs,
    make_client,
    mask_url,
    post_json,
    url_secrets,
)


def message(alert: AlertMessage) -> dict[str, Any]:
    """The JSON an incoming webhook takes: fallback text, blocks without clickable controls."""
    blocks = build_blocks(alert, interactive=False)
    return {
        "text": fallback_text(alert),
        "blocks": [block.to_dict() for block in blocks],
        "unfurl_links": False,
        "unfurl_media": False,
    }


def digest_message(digest: Digest) -> dict[str, Any]:
    """The JSON of a digest for an incoming webhook: the bot notifier's digest blocks."""
    return {
        "text": digest_fallback_text(digest),
        "blocks": [block.to_dict() for block in digest_blocks(digest)],
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
        self._post(message(alert), f"slack incoming webhook {self._masked_url}")
        return None

    def send_digest(self, digest: Digest) -> str | None:
        """One message for the digest's alerts; None (a webhook says nothing about it)."""
        where = f"slack incoming webhook {self._masked_url} (digest #{digest.digest_id})"
        self._post(digest_message(digest), where)
        return None

    def _post(self, payload: dict[str, Any], where: str) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        post_json(self._client, self._url, body, {}, where=where, secrets=self._secrets)
