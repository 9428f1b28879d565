"""Structured output (docs/structured-output.md): `response_format` checked before anything is sent — the
schema itself (JSON Schema 2020-12), OpenAI's strict-mode rules, and limits that keep a schema from exploding a
grammar compiler — with errors that name the offending path; what each backend enforces, and the stage that holds
every answer to its format (validate, repair, re-ask, with every attempt billed)."""

from __future__ import annotations

from sluice.structured.answers import AnswerFormat, Verdict
from sluice.structured.constraints import FIELDS as CONSTRAINT_FIELDS
from sluice.structured.constraints import Constraint, check_constraints, constraint_of
from sluice.structured.formats import LIMITS, FormatLimits, check_response_format
from sluice.structured.instances import instance_for, json_object_instance, json_text
from sluice.structured.metrics import StructuredMetrics
from sluice.structured.stage import (
    ATTEMPTS_HEADER,
    MODE_HEADER,
    VERDICT_FIELD,
    StructuredOutputFailed,
    StructuredStage,
)
from sluice.structured.support import Support, adapt, constrains, enforces, response_format_of, support_of
from sluice.structured.tools import MAX_TOOLS, ToolsError, check_tools, has_tool_fields

__all__ = [
    "ATTEMPTS_HEADER",
    "CONSTRAINT_FIELDS",
    "LIMITS",
    "MAX_TOOLS",
    "MODE_HEADER",
    "VERDICT_FIELD",
    "AnswerFormat",
    "Constraint",
    "FormatLimits",
    "StructuredMetrics",
    "StructuredOutputFailed",
    "StructuredStage",
    "Support",
    "ToolsError",
    "Verdict",
    "adapt",
    "check_constraints",
    "check_response_format",
    "check_tools",
    "constrains",
    "constraint_of",
    "enforces",
    "has_tool_fields",
    "instance_for",
    "json_object_instance",
    "json_text",
    "response_format_of",
    "support_of",
]
