"""Slack Socket Mode: button clicks and ✅ reactions reach listener without a public URL.

With an app-level token (xapp-…, scope connections:write) in the environment variable that
`[slack] app_token_env` names (SLACK_APP_TOKEN by default), `slack_socket` makes a `SlackSocket`:
slack_sdk's built-in `SocketModeClient` (no other dependency), which asks `apps.connections.open`
at `[slack] base_url` for a websocket URL, connects, answers Slack's pings and reconnects when
the connection drops or Slack rotates it. The daemon calls `start()` at start-up (it connects on
a background thread, retrying with a growing pause while Slack cannot be reached) and `close()`
when it stops.

Envelopes are handled one at a time, in the order they came. Every envelope that has an
`envelope_id` is acknowledged (`SocketModeResponse`) first, before any database work; the Web
API calls that follow run later on their own worker (`SlackInteractions`). Then, by type:

- "interactive" with a block_actions payload: the click goes to the same handler as POST
  /slack/actions (`listener.feedback.SlackInteractions.handle_payload`): feedback is recorded,
  'Acknowledge' acknowledges the alert's conversation, and the clicked message is re-rendered;
- "events_api" with a `reaction_added` event whose reaction is a check mark (white_check_mark,
  heavy_check_mark, ballot_box_with_check) on a message (`item.type` "message"): when that
  message is one of our alerts (`Store.alert_for_ref("channel:ts")`), its conversation is
  acknowledged by the reacting user, via "slack", and the conversation's root message (the one
  in the channel, not the thread reply) is re-rendered with `chat.update`;
- anything else (other events, slash commands, malformed envelopes) is logged by its type only
  and otherwise ignored.

Re-rendering needs the bot token (`[slack] token_env`); without it acknowledgements are still
recorded. Neither token is ever logged or shown in a repr, and payloads (which quote the
message, and so the post) are never logged: slack_sdk's client logs through
"listener.slack_socket.sdk" at WARNING and above only, since its debug lines quote whole frames.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import threading
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from listener.feedback import SlackInteractions, slack_client, slack_error
from listener.store import Store, utcnow

if TYPE_CHECKING:
    from slack_sdk.socket_mode.builtin import SocketModeClient
    from slack_sdk.socket_mode.client import BaseSocketModeClient

    from listener.config import Config

__all__ = ["CHECK_MARKS", "SlackSocket", "slack_socket"]

log = logging.getLogger(__name__)

#: Reactions that acknowledge an alert.
CHECK_MARKS = frozenset({"white_check_mark", "heavy_check_mark", "ballot_box_with_check"})

#: slack_sdk's Socket Mode client logs here; its debug lines quote whole frames, so never those.
SDK_LOGGER = "listener.slack_socket.sdk"

RETRY_FIRST = 1.0  # seconds before the second attempt to connect
RETRY_MAX = 60.0


class SlackSocket:
    """A Socket Mode connection to Slack for `interactions`; see the module docstring.

    `start()` returns at once and connects in the background; `close()` disconnects and waits for
    the Web API calls still queued. A SlackSocket is started at most once."""

    def __init__(
        self,
        app_token: str,
        base_url: str,
        interactions: SlackInteractions,
        *,
        timeout: float = 15.0,
        ping_interval: float = 5.0,
    ) -> None:
        self._app_token = app_token
        self.base_url = base_url
        self._interactions = interactions
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._client: SocketModeClient | None = None
        self._closing = threading.Event()
        self._connector: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the token
        state = "closed" if self._closing.is_set() else "started" if self._client else "new"
        return f"SlackSocket(base_url={self.base_url!r}, app_token=set, {state})"

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; slack_sdk keeps the connection up from then on."""
        from slack_sdk import WebClient
        from slack_sdk.socket_mode.builtin import SocketModeClient

        with self._lock:
            if self._client is not None or self._closing.is_set():
                raise RuntimeError("a SlackSocket is started once")
            sdk_log = logging.getLogger(SDK_LOGGER)
            if sdk_log.level == logging.NOTSET:
                sdk_log.setLevel(logging.WARNING)
            web = WebClient(
                base_url=self.base_url,
                timeout=int(max(1, self._timeout)),
                retry_handlers=[],
                logger=sdk_log,
            )
            self._client = SocketModeClient(
                app_token=self._app_token,
                logger=sdk_log,
                web_client=web,
                ping_interval=self._ping_interval,
                concurrency=1,  # one envelope after the other, in the order Slack sent them
            )
            self._client.message_listeners.append(self._on_message)
            self._connector = threading.Thread(
                target=self._connect, name="slack-socket-connect", daemon=True
            )
            self._connector.start()

    def close(self) -> None:
        """Disconnect, stop slack_sdk's threads, and wait for the queued Web API calls."""
        self._closing.set()
        with self._lock:
            client, connector = self._client, self._connector
        if connector is not None:
            connector.join(timeout=self._timeout + 5)
        if client is not None:
            client.auto_reconnect_enabled = False
            _wake_receiver(client)
            client.close()
        self._interactions.close()

    def is_connected(self) -> bool:
        client = self._client
        return client is not None and client.is_connected()

    def _connect(self) -> None:
        """Until the first connection succeeds: apps.connections.open and the websocket. After
        that slack_sdk's own monitor reconnects whenever the connection is lost."""
        from slack_sdk.errors import SlackApiError, SlackClientError

        client = self._client
        assert client is not None
        pause = RETRY_FIRST
        while not self._closing.is_set():
            try:
                client.connect()
                return
            except SlackApiError as exc:
                reason = slack_error(exc)
            except (SlackClientError, OSError, http.client.HTTPException, ValueError) as exc:
                reason = type(exc).__name__
            log.warning(
                "Slack Socket Mode: cannot connect (%s); trying again in %.0fs", reason, pause
            )
            self._closing.wait(pause)
            pause = min(pause * 2, RETRY_MAX)

    # --- envelopes -----------------------------------------------------------------------------

    def _on_message(
        self, client: BaseSocketModeClient, message: dict[str, Any], raw: str | None
    ) -> None:
        """slack_sdk's message listener, on its worker threads: acknowledge, then dispatch."""
        from slack_sdk.errors import SlackClientError
        from slack_sdk.socket_mode.response import SocketModeResponse

        kind = _kind(message.get("type"))
        envelope_id = message.get("envelope_id")
        if not isinstance(envelope_id, str) or not envelope_id:
            if kind == "hello":
                log.info("Slack Socket Mode: connected")
            elif kind != "disconnect":  # slack_sdk reconnects on disconnect itself
                log.info("Slack Socket Mode: ignored a %s message without an envelope id", kind)
            return
        try:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id))
        except (SlackClientError, OSError) as exc:
            log.warning(
                "Slack Socket Mode: could not acknowledge a %s envelope: %s",
                kind,
                type(exc).__name__,
            )
        try:
            self._dispatch(kind, message.get("payload"))
        except Exception as exc:  # a bug: the traceback, without the payload
            trace = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
            log.error(
                "Slack Socket Mode: handling a %s envelope crashed: %s\n%s",
                kind,
                type(exc).__name__,
                trace,
            )

    def _dispatch(self, kind: str, payload: Any) -> None:
        if not isinstance(payload, Mapping):
            log.info("Slack Socket Mode: ignored a %s envelope without a payload object", kind)
            return
        if kind == "interactive":
            status, answer = self._interactions.handle_payload(payload)
            if status != 200:
                log.info(
                    "Slack Socket Mode: an interactive payload was refused: %s",
                    answer.get("error"),
                )
            return
        if kind == "events_api":
            self._event(payload.get("event"))
            return
        log.info("Slack Socket Mode: ignored a %s envelope", kind)

    def _event(self, event: Any) -> None:
        from listener.notify.slack import USER_ID

        if not isinstance(event, Mapping):
            log.info("Slack Socket Mode: ignored an events_api envelope without an event")
            return
        kind = _kind(event.get("type"))
        if kind != "reaction_added":
            log.info("Slack Socket Mode: ignored a %s event", kind)
            return
        reaction = event.get("reaction")
        name = reaction.split("::")[0] if isinstance(reaction, str) else ""
        if name not in CHECK_MARKS:
            return  # 👍 and the like: nothing to do
        item = event.get("item")
        user = event.get("user")
        if not isinstance(item, Mapping) or item.get("type") != "message":
            return  # a check mark on a file: not an alert
        channel, ts = item.get("channel"), item.get("ts")
        if not (isinstance(channel, str) and channel and isinstance(ts, str) and ts):
            log.info("Slack Socket Mode: ignored a reaction without a channel and ts")
            return
        if not isinstance(user, str) or not USER_ID.match(user):
            log.info("Slack Socket Mode: ignored a reaction without a user id")
            return
        self._interactions.acknowledge_message(channel, ts, user)


def _wake_receiver(client: SocketModeClient) -> None:
    """Shut the websocket's TCP connection down, so the receiving thread's blocking read (3 s
    in slack_sdk, holding the lock `close()` needs) returns at once instead of timing out."""
    sock = getattr(client.current_session, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _kind(value: Any) -> str:
    """An envelope's or event's type, safe to log: a short word, or what it was instead."""
    if isinstance(value, str) and value.isascii() and value.replace("_", "").isalnum():
        return value[:40]
    return "untyped" if value is None else f"malformed ({type(value).__name__})"


def slack_socket(
    config: Config,
    store: Store,
    env: Mapping[str, str],
    *,
    clock: Callable[[], datetime] = utcnow,
    ping_interval: float = 5.0,
) -> SlackSocket | None:
    """The Socket Mode connection when `[slack]` is configured and its app token is in the
    environment; None otherwise, saying so in an info log. Not started: call `start()`."""
    settings = config.main.slack
    if settings is None:
        log.info("Slack Socket Mode: off (config.toml has no [slack] section)")
        return None
    app_token = env.get(settings.app_token_env, "").strip()
    if not app_token:
        log.info(
            "Slack Socket Mode: off; set %s (an app-level token, xapp-…) to receive clicks and "
            "✅ reactions without a public URL",
            settings.app_token_env,
        )
        return None
    client = slack_client(config, env)
    if client is None:
        log.warning(
            "Slack Socket Mode: acknowledgements and clicks are recorded, but messages are not "
            "updated: %s is not set",
            settings.token_env,
        )
    interactions = SlackInteractions(store, config.organisations, client, clock=clock)
    return SlackSocket(
        app_token,
        settings.base_url,
        interactions,
        timeout=settings.timeout.total_seconds(),
        ping_interval=ping_interval,
    )
