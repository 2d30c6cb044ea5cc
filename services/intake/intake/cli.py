"""``nighttalk intake``: migrate, api, relay."""

from servicekit.commands import service_group


def _metadata():
    from intake.models import metadata

    return metadata


group = service_group("intake", package="intake", port=8101, metadata=_metadata)
