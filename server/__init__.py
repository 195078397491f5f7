"""refinery-mock: an offline stand-in for the AI Refinery realtime voice service."""

__version__ = "0.1.0"

#: What ``python -m server`` prints once its socket is bound, followed by the
#: URL: launchers and tests wait for this line instead of probing a port.
LISTENING_PREFIX = "refinery-mock listening on "
