"""``nighttalk notify``: migrate, api, relay, consume."""

from servicekit.commands import service_group


def _metadata():
    from notify.models import metadata

    return metadata


def _handlers(runtime):
    from notify.handlers import handlers

    return handlers(runtime)


group = service_group("notify", package="notify", port=8104, metadata=_metadata, handlers=_handlers)
