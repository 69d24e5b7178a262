"""Reports: reports served over HTTP behind the appliance's proxy."""

from __future__ import annotations

from .servable import HttpServable


class Report(HttpServable):
    """A report: served like an app (HTTP on port 8080, at ``url``), listed and shared as a report."""

    TYPE = "report"


__all__ = ["Report"]
