"""Daemons: services for other servables, not exposed through the proxy."""

from __future__ import annotations

from .servable import Servable


class Daemon(Servable):
    """A daemon: runs until stopped; other servables holding READ or REQUEST on it reach it at
    its instance's ``ipv4_address``, on any port and protocol. A daemon prototype may give it a
    persistent volume (``volume``), kept across its instances."""

    TYPE = "daemon"


__all__ = ["Daemon"]
