"""``nighttalk supervision``: migrate, api, relay, consume."""

from servicekit.commands import service_group


def _metadata():
    from supervision.models import metadata

    return metadata


def _handlers(runtime):
    from supervision.handlers import handlers

    return handlers(runtime)


group = service_group(
    "supervision", package="supervision", port=8103, metadata=_metadata, handlers=_handlers
)
