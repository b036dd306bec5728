"""router-monitor: monitors the 4G routers and devices of a national schools programme."""

__version__ = "0.1.0"
