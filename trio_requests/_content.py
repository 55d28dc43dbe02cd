"""Turning ``content=``, ``data=``, ``json=`` and ``files=`` into a body."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

from ._models import RequestContent
from ._multipart import FileValue, encode_multipart

FormData = Mapping[str, Any] | Sequence[tuple[str, Any]]
Files = Mapping[str, FileValue] | Sequence[tuple[str, FileValue]]
#: the headers of a body that needs none (shared: not a dict per request)
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def encode_body(
    *,
    content: RequestContent | None = None,
    data: FormData | None = None,
    files: Files | None = None,
    json: Any = None,
) -> tuple[RequestContent | None, Mapping[str, str]]:
    """The body and the headers that describe it (Content-Type, and
    Content-Length when known in advance)."""
    if data is None and files is None and json is None:
        return content, _NO_HEADERS  # the common case (and at most one argument given)
    if sum(x is not None for x in (content, json)) + (data is not None or files is not None) > 1:
        raise TypeError("pass only one of content=, json=, or data=/files=")
    if files is not None:
        fields: Any = data or {}
        content_type, length, chunks = encode_multipart(fields, files)
        headers = {"Content-Type": content_type}
        if length is not None:
            headers["Content-Length"] = str(length)
        return chunks, headers
    if data is not None:
        if isinstance(data, (bytes, str)):
            raise TypeError("data= takes form fields; send raw bytes with content=")
        body = urlencode(list(data.items()) if isinstance(data, Mapping) else data, doseq=True)
        return body.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    if json is not None:
        body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return body.encode(), {"Content-Type": "application/json"}
    return content, _NO_HEADERS
