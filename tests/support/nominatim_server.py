"""A small threaded Nominatim on 127.0.0.1 for testing the profile geocoder without the internet.

It answers `GET /search?q=...&format=json` the way nominatim.openstreetmap.org does: a JSON list
of places (`place_id`, `lat` and `lon` as strings, `display_name`, `class`, `type`, `importance`,
and `address` when `addressdetails=1`), `[]` for an unknown query. Queries are matched casefolded
and `countrycodes` and `limit` are honoured. Every request is recorded (path, query parameters,
User-Agent), and the next answers can be scripted: a 429 with Retry-After, a 500, a delay.

    with NominatimServer() as server:
        settings = GeoSettings(nominatim=True, nominatim_domain=server.domain,
                               nominatim_scheme="http", user_agent="test (t@example.org)")
        server.script(Reply(status=429, headers={"Retry-After": "30"}))
        ...
        assert server.requests[0].params["q"] == "soest"
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.localserver import LocalServer

LICENCE = "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright"


def place(
    place_id: int,
    display_name: str,
    lat: str,
    lon: str,
    country_code: str,
    *,
    kind: str = "town",
    importance: float = 0.5,
    address: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One search result in Nominatim's `format=json`, with its `address` (addressdetails=1)."""
    parts = [part.strip() for part in display_name.split(",")]
    return {
        "place_id": place_id,
        "licence": LICENCE,
        "osm_type": "relation",
        "osm_id": place_id * 10,
        "lat": lat,
        "lon": lon,
        "class": "place",
        "type": kind,
        "place_rank": 16,
        "importance": importance,
        "addresstype": kind,
        "name": parts[0],
        "display_name": display_name,
        "address": address
        or {kind: parts[0], "state": parts[-2], "country": parts[-1], "country_code": country_code},
        "boundingbox": [lat, lat, lon, lon],
    }


# Queries the server knows, casefolded, each with its results (best first).
KNOWN: dict[str, list[dict[str, Any]]] = {
    "soest": [place(1001, "Soest, Utrecht, Nederland", "52.1733", "5.2917", "nl")],
    "gent": [place(1002, "Gent, Oost-Vlaanderen, België", "51.0538", "3.7250", "be", kind="city")],
    "zoetermeer": [
        place(1003, "Zoetermeer, Zuid-Holland, Nederland", "52.0575", "4.4931", "nl", kind="city")
    ],
    "lelystad": [
        place(1004, "Lelystad, Flevoland, Nederland", "52.5185", "5.4714", "nl", kind="city")
    ],
    "parijs": [
        place(1005, "Parijs, Île-de-France, Frankrijk", "48.8589", "2.3200", "fr", kind="city")
    ],
}


@dataclass(frozen=True)
class Reply:
    """A scripted answer; `body=None` is the normal search answer (a 200) or a JSON error."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    path: str
    params: dict[str, str]
    user_agent: str | None


class NominatimServer(LocalServer["Recorded", "Reply"]):
    """Context manager running the server in a background thread; see the module docstring."""

    def __init__(self, places: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.places = KNOWN if places is None else places
        super().__init__()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def domain(self) -> str:
        """'127.0.0.1:PORT', for `GeoSettings.nominatim_domain` (with `nominatim_scheme='http'`)."""
        host, port = self.address
        return f"{host}:{port}"

    def search(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """What Nominatim would answer to these /search parameters."""
        results = self.places.get(params.get("q", "").casefold().strip(), [])
        if codes := params.get("countrycodes"):
            wanted = set(codes.lower().split(","))
            results = [r for r in results if r["address"]["country_code"] in wanted]
        if "limit" in params:
            results = results[: int(params["limit"])]
        if params.get("addressdetails") != "1":
            results = [{k: v for k, v in r.items() if k != "address"} for r in results]
        return results

    def _answer(self, recorded: Recorded) -> Reply:
        scripted = self.next_scripted(recorded)
        if scripted is not None:
            return scripted
        if recorded.path != "/search":
            return Reply(status=404, body=b'{"error": "unknown path"}')
        return Reply(body=None)


def _handler_for(server: NominatimServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            recorded = Recorded(
                path=parts.path,
                params=dict(parse_qsl(parts.query, keep_blank_values=True)),
                user_agent=self.headers.get("User-Agent"),
            )
            reply = server._answer(recorded)
            if reply.delay and server.stopping.wait(reply.delay):
                return
            body = reply.body
            if body is None and reply.status == 200:
                body = json.dumps(server.search(recorded.params), ensure_ascii=False).encode()
            elif body is None:
                body = json.dumps({"error": f"scripted {reply.status}"}).encode()
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (e.g. it timed out during a scripted delay)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

    return Handler
