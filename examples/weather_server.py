"""An example MCP server (stdio) with one tool, `get_forecast`, answering from a fixed table, not a weather service.

Run by an MCP client, for instance: toolcall generate --mcp "python examples/weather_server.py" "Will it rain in Paris?"
"""
from __future__ import annotations

import zlib
from typing import Annotated

from mcp.server import MCPServer
from pydantic import Field

server = MCPServer("example-weather")

SKIES = ("sunny", "partly cloudy", "overcast", "light rain", "heavy rain", "snow showers")


@server.tool()
def get_forecast(city: Annotated[str, Field(description='The city, e.g. "Paris".')],
                 day: Annotated[str, Field(description='"today", "tomorrow" or a weekday.')] = "today") -> str:
    """The weather forecast for a city (example data: the same city and day always get the same forecast)."""
    seed = zlib.crc32(f"{city.strip().lower()}|{day.strip().lower()}".encode())
    sky = SKIES[seed % len(SKIES)]
    high = 5 + (seed >> 8) % 25
    rain = (seed >> 16) % 101 if "rain" in sky or "snow" in sky else (seed >> 16) % 21
    return f"{city.strip()}, {day.strip()}: {sky}, high {high} C, chance of rain {rain}%."


if __name__ == "__main__":
    server.run("stdio")
