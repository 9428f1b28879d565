"""The `tags` section: request headers copied into the request log as annotations (docs/config.md#tags)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from sluice.config._base import _Strict

_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP field name (RFC 9110 token)
_TAG = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_RESERVED = ("authorization", "proxy-authorization", "cookie", "x-api-key")  # secrets never reach the log


class TagsConfig(_Strict):
    # request header -> tag name: the header's value lands in the request log as annotation `tag.<name>`
    headers: dict[str, str] = {}
    max_chars: int = Field(128, gt=0, le=1024)  # longer values are cut to this many characters

    @field_validator("headers")
    @classmethod
    def _valid_names(cls, headers: dict[str, str]) -> dict[str, str]:
        names: dict[str, str] = {}
        for header, tag in headers.items():
            if not _HEADER.match(header):
                raise ValueError(f"{header!r} is not an HTTP header name")
            if header.lower() in _RESERVED:
                raise ValueError(f"{header!r} carries credentials; it cannot be copied into the request log")
            if not _TAG.match(tag):
                raise ValueError(f"tag name {tag!r} for header {header!r}: use lower-case letters, digits and _, "
                                 "starting with a letter (at most 64)")
            if header.lower() in names:
                raise ValueError(f"header {header!r} is listed twice (header names are case-insensitive)")
            names[header.lower()] = tag
        return names


__all__ = ["TagsConfig"]
