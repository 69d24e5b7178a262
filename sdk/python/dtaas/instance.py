"""Instances: the runs of servables, and the resources a servable may use.

An :class:`Instance` is what ``run()`` of a servable answers: its ``state``, ``ipv4_address``
(on the servable network, reachable by servables that hold READ or REQUEST on it), ``url`` for
the HTTP types, ``exit_code`` and, for pipelines, the ``outputs`` it created. It is a snapshot:
:meth:`Instance.refresh` reads it again, :meth:`Instance.wait` until it gets somewhere.
"""

from .client import id_of
from .servable import ACTIVE_STATES, ENDED_STATES, Instance, LogLine, Output, Resources

__all__ = ["ACTIVE_STATES", "ENDED_STATES", "Instance", "LogLine", "Output", "Resources", "id_of"]
