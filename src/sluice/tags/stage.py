"""`HeaderTags`: the chain stage that copies configured request headers into the request's annotations.

The worked example of adding a stage (docs/architecture.md#adding-a-stage): a config section (`tags`), this
class, one line in the composition root. With `tags.headers` empty it is not in any chain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.config import TagsConfig

if TYPE_CHECKING:
    from sluice.gateway.chain import Call, Next, Reply


class HeaderTags:
    name = "tags"

    def __init__(self, config: TagsConfig) -> None:
        self.headers = tuple((header, f"tag.{tag}") for header, tag in config.headers.items())  # lower-case names
        self.max_chars = config.max_chars

    async def __call__(self, call: Call, next: Next) -> Reply:
        ctx = call.ctx
        sent = ctx.headers
        for header, key in self.headers:
            value = sent.get(header)
            if value:  # absent or empty: no annotation
                ctx.annotate(key, value[:self.max_chars])
        return await next(call)


__all__ = ["HeaderTags"]
