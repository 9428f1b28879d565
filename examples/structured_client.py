"""The Instructor example against a running gateway: a pydantic model in, a validated instance out.

    make serve                                               # the default gateway, http://127.0.0.1:4000/v1
    python examples/structured_client.py                     # the local SmolLM2 model
    python examples/structured_client.py llama-3.1-8b-sim-h100 --base-url http://127.0.0.1:4000/v1

Needs the `openai` SDK (`pip install -e ".[client]"`). See docs/structured-client.md.
"""

from __future__ import annotations

import argparse
import os

from pydantic import BaseModel, field_validator

from sluice.client import StructuredOutputError, structured

DEFAULT_MODEL = "smollm2-135m-instruct"  # served by the default config (`make serve`)
DEFAULT_BASE_URL = "http://127.0.0.1:4000/v1"


class UserInfo(BaseModel):
    name: str
    age: int

    @field_validator("age")
    @classmethod
    def age_is_plausible(cls, age: int) -> int:
        if not 0 <= age <= 150:
            raise ValueError("age must be between 0 and 150")
        return age


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Extract a typed UserInfo from text through the sluice gateway.")
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=f"public model name (default: {DEFAULT_MODEL})")
    parser.add_argument("--base-url", default=os.environ.get("SLUICE_URL", DEFAULT_BASE_URL),
                        help=f"the gateway's /v1 root (default: $SLUICE_URL or {DEFAULT_BASE_URL})")
    parser.add_argument("--api-key", default=os.environ.get("SLUICE_API_KEY", "unused"),
                        help="a virtual key or the master key, when the gateway asks for one ($SLUICE_API_KEY)")
    parser.add_argument("--text", default="John Doe is 30 years old.", help="the text to extract from")
    args = parser.parse_args(argv)

    from openai import APIConnectionError, OpenAI  # imported here: `--help` works without the SDK

    client = OpenAI(base_url=args.base_url, api_key=args.api_key)
    try:
        answer = structured(client, model=args.model, response_model=UserInfo, max_retries=2,
                            messages=[{"role": "user", "content": f"Extract the user: {args.text}"}])
    except APIConnectionError:
        print(f"no gateway at {args.base_url}: start one with `make serve` (or pass --base-url)")
        return 2
    except StructuredOutputError as error:
        print(f"no valid UserInfo after {error.attempts} attempts ({error.usage.total_tokens} tokens): {error}")
        return 1
    print(repr(answer.value))
    cost = f", ${answer.usage.cost_usd:.6f}" if answer.usage.cost_usd is not None else ""
    print(f"{answer.calls} call(s), {answer.attempts} attempt(s), modes {answer.modes}, "
          f"{answer.usage.total_tokens} tokens{cost}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
