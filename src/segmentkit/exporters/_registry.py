"""The destinations segmentkit builds for and pushes to, by platform name.

Adding a platform: write its module (builder + ``DESTINATION``), list it here, export
its builder from :mod:`segmentkit.exporters`, add its tests and its page in
``docs/destinations/``. ``tests/test_destinations.py`` checks every registered
destination is documented and reachable from ``push`` and the command line.
"""

from __future__ import annotations

from segmentkit._common._params import OneOf, validate_params
from segmentkit.exporters import _braze, _google_ads, _hubspot, _klaviyo, _mailchimp, _meta
from segmentkit.exporters._destination import Destination

__all__ = ["destination", "destinations", "platform_names"]

# In the order the docs list them. A dict (not a read-only view) so a test can swap one in.
_DESTINATIONS: dict[str, Destination] = {
    d.name: d
    for d in (
        _meta.DESTINATION,
        _google_ads.DESTINATION,
        _klaviyo.DESTINATION,
        _mailchimp.DESTINATION,
        _hubspot.DESTINATION,
        _braze.DESTINATION,
    )
}


def platform_names() -> tuple[str, ...]:
    """The registered platform names, in the docs' order."""
    return tuple(_DESTINATIONS)


def destinations() -> tuple[Destination, ...]:
    """Every registered destination, in the docs' order."""
    return tuple(_DESTINATIONS.values())


def destination(platform: object, *, owner: str = "Request") -> Destination:
    """The destination of ``platform``, or an error naming the known ones.

    Parameters
    ----------
    platform : str
        Platform name (``'google_ads'``).
    owner : str, default='Request'
        Whose ``platform`` parameter it is, for the message.

    Returns
    -------
    Destination

    Raises
    ------
    InvalidParameterError
        Unknown platform (a ``ValueError``).
    """
    validate_params(owner, {"platform": platform}, {"platform": [OneOf(*_DESTINATIONS)]})
    return _DESTINATIONS[str(platform)]
