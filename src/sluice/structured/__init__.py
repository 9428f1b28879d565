"""Structured output (docs/structured-output.md): `response_format` checked before anything is sent — the
schema itself (JSON Schema 2020-12), OpenAI's strict-mode rules, and limits that keep a schema from exploding a
grammar compiler — with errors that name the offending path."""

from __future__ import annotations

from sluice.structured.formats import LIMITS, FormatLimits, check_response_format

__all__ = ["LIMITS", "FormatLimits", "check_response_format"]
