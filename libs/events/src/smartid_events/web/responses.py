"""`OrjsonResponse`: a `JSONResponse` whose body orjson writes."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    """The bytes Starlette's `JSONResponse` writes (compact, UTF-8, keys in order), ~5x faster.

    orjson also writes dates, moments and UUIDs (as ISO 8601 and hyphenated strings) and
    non-string keys as strings, where `json.dumps` would fail.
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
