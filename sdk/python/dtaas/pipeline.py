"""Pipelines: servables that do one task and exit."""

from __future__ import annotations

from .servable import Servable


class Pipeline(Servable):
    """A pipeline: its instance runs once (``exited`` or ``failed``, with ``exit_code``); the
    objects it creates while it runs are listed in the instance's ``outputs``."""

    TYPE = "pipeline"


__all__ = ["Pipeline"]
