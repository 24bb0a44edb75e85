"""Example plugin: the current weather for a city, from Open-Meteo.

Open-Meteo needs no API key. The tool makes two GET requests: the geocoding
API turns the city name into coordinates, then the forecast API gives the
current conditions there. Both go through httpx2 with ``trust_env=False`` (no
proxy or netrc taken from the environment), a 10-second timeout, no
redirects, and a cap on the size of each response body.

For tests (or a self-hosted Open-Meteo), the two base URLs can be replaced
through ``AGENTCLI_WEATHER_GEOCODE_URL`` and ``AGENTCLI_WEATHER_FORECAST_URL``;
they are read at each call.

Policy: left at the default ("ask"). The call reaches the internet and sends
the city name to a third party, so the user sees it before it runs.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

import httpx2

from agentcli import tool
from agentcli.errors import ToolError

GEOCODE_URL = "https://geocoding-api.open-meteo.com/v1/search"
FORECAST_URL = "https://api.open-meteo.com/v1/forecast"
GEOCODE_ENV = "AGENTCLI_WEATHER_GEOCODE_URL"
FORECAST_ENV = "AGENTCLI_WEATHER_FORECAST_URL"
TIMEOUT = 10.0
MAX_BODY = 512 * 1024  # bytes; real answers are a few hundred bytes
MAX_CITY = 100

# WMO weather interpretation codes, as documented by Open-Meteo.
WMO_CODES: dict[int, str] = {
    0: "clear sky", 1: "mainly clear", 2: "partly cloudy", 3: "overcast",
    45: "fog", 48: "depositing rime fog",
    51: "light drizzle", 53: "moderate drizzle", 55: "dense drizzle",
    56: "light freezing drizzle", 57: "dense freezing drizzle",
    61: "slight rain", 63: "moderate rain", 65: "heavy rain",
    66: "light freezing rain", 67: "heavy freezing rain",
    71: "slight snowfall", 73: "moderate snowfall", 75: "heavy snowfall", 77: "snow grains",
    80: "slight rain showers", 81: "moderate rain showers", 82: "violent rain showers",
    85: "slight snow showers", 86: "heavy snow showers",
    95: "thunderstorm", 96: "thunderstorm with slight hail", 99: "thunderstorm with heavy hail",
}


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
    """Current weather (temperature, wind, conditions) for a city, from Open-Meteo.

    Args:
        city: City name, e.g. "Berlin" or "São Paulo". The best match worldwide is used.
        unit: Temperature unit.
    """
    name = " ".join(city.split())
    if not name:
        raise ToolError("city is empty: give a city name, e.g. \"Berlin\"")
    if len(name) > MAX_CITY:
        raise ToolError(f"city name too long ({len(name)} characters, at most {MAX_CITY})")
    with httpx2.Client(trust_env=False, timeout=TIMEOUT, follow_redirects=False) as client:
        place = _geocode(client, name)
        current, units = _current(client, place, unit)
    return _summary(place, current, units, unit)


def _geocode(client: httpx2.Client, name: str) -> dict[str, Any]:
    """The first geocoding match for ``name``; ToolError when there is none."""
    url = os.environ.get(GEOCODE_ENV) or GEOCODE_URL
    data = _get_json(client, url, {"name": name, "count": 1, "language": "en", "format": "json"})
    results = data.get("results") if isinstance(data, dict) else None
    if not results or not isinstance(results, list) or not isinstance(results[0], dict):
        raise ToolError(f"unknown city: no place called {name!r} was found; "
                        "check the spelling or try the nearest larger city")
    place = results[0]
    if not all(isinstance(place.get(k), (int, float)) for k in ("latitude", "longitude")):
        raise ToolError("the geocoding service sent a place without coordinates")
    return place


def _current(client: httpx2.Client, place: dict[str, Any],
             unit: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``current`` block of the forecast at ``place``, and its units."""
    url = os.environ.get(FORECAST_ENV) or FORECAST_URL
    params = {
        "latitude": place["latitude"],
        "longitude": place["longitude"],
        "current": "temperature_2m,wind_speed_10m,weather_code",
        "temperature_unit": unit,
        "timezone": "auto",
    }
    data = _get_json(client, url, params)
    current = data.get("current") if isinstance(data, dict) else None
    if not isinstance(current, dict) or "temperature_2m" not in current:
        raise ToolError("the forecast service sent no current conditions")
    units = data.get("current_units")
    return current, units if isinstance(units, dict) else {}


def _get_json(client: httpx2.Client, url: str, params: dict[str, Any]) -> Any:
    """GET ``url`` and parse the JSON body, reading at most MAX_BODY bytes."""
    try:
        with client.stream("GET", url, params=params) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise ToolError(f"the weather service sent more than {MAX_BODY:,} bytes; gave up")
            status = response.status_code
    except httpx2.TimeoutException:
        raise ToolError(f"the weather service did not answer within {TIMEOUT:g} s") from None
    except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
        raise ToolError(f"cannot reach the weather service: {type(exc).__name__}: {exc}") from None
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if status != 200:
        reason = data.get("reason") if isinstance(data, dict) else None
        detail = f": {str(reason)[:200]}" if reason else ""
        raise ToolError(f"the weather service answered HTTP {status}{detail}")
    if data is None:
        raise ToolError("the weather service sent a body that is not JSON")
    return data


def _summary(place: dict[str, Any], current: dict[str, Any], units: dict[str, Any],
             unit: str) -> dict[str, Any]:
    """The compact answer for the model."""
    temp_unit = units.get("temperature_2m") or ("°F" if unit == "fahrenheit" else "°C")
    wind_unit = units.get("wind_speed_10m") or "km/h"
    code = current.get("weather_code")
    conditions = WMO_CODES.get(code, f"unknown (WMO code {code})") if isinstance(code, int) \
        else "unknown"
    result: dict[str, Any] = {"city": place.get("name"), "country": place.get("country")}
    if place.get("admin1"):
        result["region"] = place["admin1"]
    result.update({
        "temperature": f"{current.get('temperature_2m')} {temp_unit}",
        "wind": f"{current.get('wind_speed_10m')} {wind_unit}",
        "conditions": conditions,
        "local_time": current.get("time"),
    })
    return result
