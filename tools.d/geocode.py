"""Example plugin: places to coordinates and back, from OpenStreetMap Nominatim.

``geocode(place)`` asks ``/search?format=jsonv2`` for the best matches of a
name or address; ``reverse_geocode(lat, lon)`` asks ``/reverse?format=jsonv2``
for the address at a point. Both keep to Nominatim's usage policy
(https://operations.osmfoundation.org/policies/nominatim/):

* every request carries a User-Agent naming agentcli and this plugin (stock
  library User-Agents are refused); set ``AGENTCLI_NOMINATIM_EMAIL`` to add a
  contact address (sent as the ``email`` parameter, as the policy suggests for
  regular use);
* at most one request per second from this process: calls wait for their turn,
  across tools, threads and conversations;
* results carry the data licence (ODbL), which asks for attribution.

``AGENTCLI_NOMINATIM_URL`` replaces https://nominatim.openstreetmap.org, for a
self-hosted instance (or tests). Requests go through httpx2 with
``trust_env=False``, a 10-second timeout, no redirects and a body size cap.

Policy: left at the default ("ask"): the place or position goes to a third party.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Annotated, Any

import httpx2
from pydantic import Field

from agentcli import __version__, tool
from agentcli.errors import ToolError

BASE_URL = "https://nominatim.openstreetmap.org"
BASE_ENV = "AGENTCLI_NOMINATIM_URL"
EMAIL_ENV = "AGENTCLI_NOMINATIM_EMAIL"
USER_AGENT = f"agentcli/{__version__} (geocode example plugin; OpenStreetMap Nominatim client)"
MIN_INTERVAL = 1.0  # seconds between two requests: the usage policy's maximum rate
TIMEOUT = 10.0
MAX_BODY = 1024 * 1024  # bytes
MAX_PLACE = 300
MAX_NAME = 1_000  # characters of a place name in a result
MATCHES = 3

_turn = threading.Lock()
_last_request = float("-inf")  # time.monotonic() when the previous request ended


@tool(untrusted_output=True)
def geocode(place: str) -> dict[str, Any]:
    """Find a place or address on OpenStreetMap; returns the best matches with coordinates.

    Args:
        place: A place name or address, e.g. "Eiffel Tower" or "10 Downing Street, London".
    """
    name = " ".join(place.split())
    if not name:
        raise ToolError('place is empty: give a name or address, e.g. "Brandenburg Gate, Berlin"')
    if len(name) > MAX_PLACE:
        raise ToolError(f"place too long ({len(name)} characters, at most {MAX_PLACE})")
    data = _request("/search", {"q": name, "format": "jsonv2", "limit": MATCHES})
    if not isinstance(data, list):
        raise ToolError("Nominatim sent an unexpected answer (not a list of places)")
    matches = [_place(item) for item in data if isinstance(item, dict) and _has_point(item)]
    if not matches:
        raise ToolError(f"no place called {name!r} was found on OpenStreetMap; check the "
                        "spelling, or add the town or country")
    return {"query": name, "matches": matches, "licence": _licence(data[0])}


@tool(untrusted_output=True)
def reverse_geocode(lat: Annotated[float, Field(ge=-90, le=90)],
                    lon: Annotated[float, Field(ge=-180, le=180)]) -> dict[str, Any]:
    """The address at a point on the map, from OpenStreetMap.

    Args:
        lat: Latitude in decimal degrees, -90 to 90, e.g. 48.8584.
        lon: Longitude in decimal degrees, -180 to 180, e.g. 2.2945.
    """
    data = _request("/reverse", {"lat": lat, "lon": lon, "format": "jsonv2"})
    if isinstance(data, dict) and "error" in data:
        raise ToolError(f"no address found at {lat}, {lon} (open sea or an unmapped area?)")
    if not isinstance(data, dict) or not _has_point(data):
        raise ToolError("Nominatim sent an unexpected answer (not a place)")
    result = _place(data)
    address = data.get("address")
    if isinstance(address, dict):
        result["address"] = {str(k): str(v) for k, v in address.items()}
    result["licence"] = _licence(data)
    return result


def _has_point(item: dict[str, Any]) -> bool:
    """Whether ``item`` holds a real position (no NaN, infinity or latitude 700)."""
    try:
        lat, lon = float(item["lat"]), float(item["lon"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return False
    return -90 <= lat <= 90 and -180 <= lon <= 180


def _place(item: dict[str, Any]) -> dict[str, Any]:
    """The fields worth showing: name, coordinates as numbers, kind, OSM object."""
    name = item.get("display_name") or item.get("name")
    place: dict[str, Any] = {"name": name[:MAX_NAME] if isinstance(name, str) else "",
                             "lat": float(item["lat"]), "lon": float(item["lon"])}
    kind = [str(item[k]) for k in ("category", "type") if item.get(k)]
    if kind:
        place["kind"] = "/".join(kind)
    if item.get("osm_type") and item.get("osm_id") is not None:
        place["osm"] = f"{item['osm_type']}/{item['osm_id']}"
    return place


def _licence(item: Any) -> str:
    text = item.get("licence") if isinstance(item, dict) else None
    return str(text) if text else "Data © OpenStreetMap contributors, ODbL 1.0"


def _request(path: str, params: dict[str, Any]) -> Any:
    """One GET to Nominatim, at least MIN_INTERVAL after the previous one ended."""
    global _last_request
    url = (os.environ.get(BASE_ENV) or BASE_URL).rstrip("/") + path
    email = os.environ.get(EMAIL_ENV, "").strip()
    if email:
        params = {**params, "email": email}
    with _turn:  # one request at a time, spaced: parallel calls queue here
        wait = _last_request + MIN_INTERVAL - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            return _get_json(url, params)
        finally:
            _last_request = time.monotonic()


def _get_json(url: str, params: dict[str, Any]) -> Any:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    try:
        deadline = time.monotonic() + TIMEOUT  # httpx2's timeout is per read: a drip
        with httpx2.Client(trust_env=False, timeout=TIMEOUT, follow_redirects=False) as client, \
                client.stream("GET", url, params=params, headers=headers) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise ToolError(f"Nominatim sent more than {MAX_BODY:,} bytes; gave up")
                if time.monotonic() > deadline:
                    raise httpx2.ReadTimeout("the answer came too slowly")
            status = response.status_code
    except httpx2.TimeoutException:
        raise ToolError(f"Nominatim did not answer within {TIMEOUT:g} s") from None
    except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
        raise ToolError(f"cannot reach Nominatim at {url}: {type(exc).__name__}: "
                        f"{str(exc)[:200]}") from None
    if status in (403, 429):
        raise ToolError(f"Nominatim refused the request (HTTP {status}): its usage policy "
                        "allows one request per second and blocks heavy use; wait, or use "
                        f"your own instance through {BASE_ENV}")
    if status != 200:
        raise ToolError(f"Nominatim answered HTTP {status}")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to read
        raise ToolError("Nominatim sent a body that is not JSON (or JSON nested too "
                        "deeply)") from None
