"""Apps: user-facing web applications, served through the appliance's proxy."""

from __future__ import annotations

from .servable import HttpServable


class App(HttpServable):
    """An app: HTTP on port 8080 in its container, reached at ``url`` through the proxy by
    callers holding REQUEST on it (unless made with ``access_control=False``)."""

    TYPE = "app"


__all__ = ["App"]
