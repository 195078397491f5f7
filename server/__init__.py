"""refinery-mock: an offline stand-in for the AI Refinery realtime voice service."""

__version__ = "0.1.0"
