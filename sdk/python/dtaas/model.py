"""Models: models served over HTTP behind the appliance's proxy."""

from __future__ import annotations

from .servable import HttpServable


class Model(HttpServable):
    """A model: served like an app (HTTP on port 8080, at ``url``), listed and shared as a model."""

    TYPE = "model"


__all__ = ["Model"]
