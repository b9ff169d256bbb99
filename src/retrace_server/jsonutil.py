"""Fast JSON responses: orjson, UTC timestamps with `Z`."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTIONS)


class JsonResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def list_envelope(data: list[Any], *, total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"data": data, "total": total, "limit": limit, "offset": offset}
