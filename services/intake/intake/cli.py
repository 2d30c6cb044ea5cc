"""``nighttalk intake``: migrate, api, relay, consume."""

from servicekit.commands import service_group


def _metadata():
    from intake.models import metadata

    return metadata


def _handlers(runtime):
    from intake.handlers import handlers

    return handlers(runtime)


def _check_settings():
    from intake.reception import check_settings

    check_settings()


group = service_group(
    "intake",
    package="intake",
    port=8101,
    metadata=_metadata,
    handlers=_handlers,
    check_settings=_check_settings,
)
