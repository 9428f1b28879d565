"""Request tags: values of configured request headers, kept in the request log as `tag.<name>` annotations."""

from sluice.tags.stage import HeaderTags

__all__ = ["HeaderTags"]
