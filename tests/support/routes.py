"""The application's HTTP routes, however FastAPI nests the routers it includes."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every `APIRoute` of the app, with its full path (routers carry their own prefixes)."""
    routes = (context.original_route for context in iter_route_contexts(app.routes))
    return [route for route in routes if isinstance(route, APIRoute)]
