"""The yardstick: a bare Starlette app on uvicorn that returns fixed JSON."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def fixed(request: Request) -> JSONResponse:
    return JSONResponse({"go": True, "cost": 1.0, "headroom_usd": 12.5, "reserved_usd": 0})


app = Starlette(routes=[Route("/fixed", fixed)])
