"""Datasets: data served over HTTP behind the appliance's proxy."""

from __future__ import annotations

from .servable import HttpServable


class Dataset(HttpServable):
    """A dataset: served like an app (HTTP on port 8080, at ``url``), listed and shared as data."""

    TYPE = "dataset"


__all__ = ["Dataset"]
