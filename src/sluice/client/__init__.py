"""The typed client helper (docs/structured-client.md): a pydantic model in, a validated instance out, over the
official `openai` SDK and the gateway's structured output — with retries, and what every attempt cost.

    from openai import OpenAI
    from sluice.client import structured

    answer = structured(OpenAI(base_url="http://127.0.0.1:4000/v1", api_key="unused"), model="m",
                        messages=[{"role": "user", "content": "John Doe is 30 years old."}], response_model=UserInfo)
    answer.value, answer.usage, answer.attempts

A user's library, not the gateway's: it imports no other `sluice` package, and `openai` only for type checking
(install it with the `client` extra); the caller passes the client.
"""

from __future__ import annotations

from sluice.client.structured import (
    Structured,
    StructuredOutputError,
    Usage,
    astructured,
    response_format_for,
    structured,
)

__all__ = ["Structured", "StructuredOutputError", "Usage", "astructured", "response_format_for", "structured"]
