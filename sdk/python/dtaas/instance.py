"""Instances: the runs of servables, and the resources a servable may use.

An :class:`Instance` is what ``run()`` of a servable answers: its ``state``, ``ipv4_address``
(on the servable network, reachable by servables that hold READ or REQUEST on it), ``url`` for
the HTTP types, ``exit_code`` and, for pipelines, the ``outputs`` it created. It is a snapshot:
:meth:`Instance.refresh` reads it again, :meth:`Instance.wait` until it gets somewhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Union

from .client import Client, resolve, segment
from .errors import Timeout, UnexpectedResponse

if TYPE_CHECKING:
    from .servable import Servable

#: States of an instance that has not ended yet.
ACTIVE_STATES = ("created", "starting", "running")
#: States of an instance that has ended.
ENDED_STATES = ("exited", "failed", "stopped")


@dataclass(frozen=True)
class Resources:
    """What a servable's container may use; sizes in megabytes, 0 for the appliance's default.

    Args:
        cpu_cores: CPU cores (a fraction is fine).
        ram: Memory in MB (0, or at least 6).
        disk: Disk in MB (0: no separate limit).
        gpu_count: GPUs.
        shm: ``/dev/shm`` in MB (0: the engine's 64 MB).
    """

    cpu_cores: float = 0
    ram: int = 0
    disk: int = 0
    gpu_count: int = 0
    shm: int = 0

    def to_json(self) -> Dict[str, Any]:
        """The ``resources`` object of the API."""
        return {
            "cpu_cores": self.cpu_cores,
            "ram": self.ram,
            "disk": self.disk,
            "gpu_count": self.gpu_count,
            "shm": self.shm,
        }

    @classmethod
    def from_json(cls, data: Optional[Dict[str, Any]]) -> "Resources":
        """Resources from the API's ``resources`` object."""
        data = data or {}
        return cls(
            cpu_cores=data.get("cpu_cores", 0),
            ram=data.get("ram", 0),
            disk=data.get("disk", 0),
            gpu_count=data.get("gpu_count", 0),
            shm=data.get("shm", 0),
        )


@dataclass(frozen=True)
class Output:
    """An object a pipeline created while it ran: its ``id``, ``kind`` (``servable`` or
    ``instance``) and ``name``."""

    id: str
    kind: str
    name: str


@dataclass(frozen=True)
class LogLine:
    """One line of an instance's log; ``id`` orders the lines (``logs(after=id)``)."""

    id: int
    text: str


def id_of(thing: Union[str, Any]) -> str:
    """The id of an SDK object, or the string given."""
    if isinstance(thing, str):
        return thing
    ident = getattr(thing, "id", None)
    if not isinstance(ident, str):
        raise TypeError(f"an id or an object with an id is expected, not {type(thing).__name__}")
    return ident


class Instance:
    """One run of a servable.

    Attributes:
        id: The instance's id.
        servable_id: The servable it runs.
        type: The servable's type (``app``, ``daemon``, ``pipeline`` ...).
        state: ``created``, ``starting``, ``running``, ``exited``, ``failed`` or ``stopped``.
        exit_code: How its container ended, once it has.
        ipv4_address: Its address on the servable network (while it runs).
        url: HTTP types: where the appliance's proxy serves it.
        restarts: How often it was started again after failing.
        error: Why it failed, when the appliance knows.
        outputs: The objects it created (pipelines), as :class:`Output`.
        runner: The principal that ran it.
        created, started, finished: ISO 8601 times (``started``/``finished`` may be ``None``).
        data: The API's whole answer.
    """

    def __init__(self, data: Dict[str, Any], client: Client) -> None:
        self.client = client
        self._load(data)

    def _load(self, data: Dict[str, Any]) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise UnexpectedResponse("an instance without an id")
        self.data = data
        self.id: str = data["id"]
        self.servable_id: str = data.get("servable", "")
        self.type: str = data.get("type", "")
        self.state: str = data.get("state", "")
        self.exit_code: Optional[int] = data.get("exit_code")
        self.ipv4_address: Optional[str] = data.get("ipv4_address")
        self.url: Optional[str] = data.get("url")
        self.restarts: int = data.get("restarts", 0)
        self.error: Optional[str] = data.get("error")
        self.outputs: List[Output] = [
            Output(id=o["id"], kind=o.get("kind", ""), name=o.get("name", ""))
            for o in data.get("outputs") or []
            if isinstance(o, dict) and isinstance(o.get("id"), str)
        ]
        self.runner: Optional[str] = data.get("runner")
        self.created: Optional[str] = data.get("created")
        self.started: Optional[str] = data.get("started")
        self.finished: Optional[str] = data.get("finished")

    def __repr__(self) -> str:
        return f"Instance(id={self.id!r}, type={self.type!r}, state={self.state!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instance) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @classmethod
    def from_id(cls, instance_id: str, *, client: Optional[Client] = None) -> "Instance":
        """The instance with this id (``GET /v1/instances/{id}``; READ on it)."""
        c = resolve(client)
        return cls(c.get(f"/instances/{segment(instance_id)}"), c)

    @property
    def is_active(self) -> bool:
        """Whether it has not ended yet (as of the last read)."""
        return self.state in ACTIVE_STATES

    def refresh(self) -> "Instance":
        """Reads the instance again; answers itself."""
        self._load(self.client.get(f"/instances/{segment(self.id)}"))
        return self

    def wait(
        self,
        states: Iterable[str] = ENDED_STATES,
        *,
        timeout: float = 300.0,
        interval: float = 0.5,
    ) -> "Instance":
        """Reads the instance until its state is one of ``states`` (by default: it has ended)
        or it has ended; answers itself. Check ``state`` for which.

        Raises:
            Timeout: ``timeout`` seconds passed first.
        """
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            if self.state in wanted or self.state in ENDED_STATES:
                return self
            if time.monotonic() >= deadline:
                raise Timeout(
                    f"instance {self.id} is still {self.state} after {timeout:g} s "
                    f"(waiting for {', '.join(sorted(wanted))})"
                )
            time.sleep(interval)

    def stop(self) -> "Instance":
        """Stops it (UPDATE): SIGTERM, then SIGKILL after the appliance's stop timeout."""
        self._load(self.client.post(f"/instances/{segment(self.id)}/stop"))
        return self

    def restart(self) -> "Instance":
        """Restarts the servable's latest instance (UPDATE), with a fresh API key; answers the
        instance that runs now."""
        return Instance(self.client.post(f"/instances/{segment(self.id)}/restart"), self.client)

    def delete(self) -> None:
        """Deletes it (DELETE): stopped first, its container and logs removed."""
        self.client.delete(f"/instances/{segment(self.id)}")

    def logs(self, after: int = 0) -> List[LogLine]:
        """Its log lines, those after the line id ``after``."""
        lines = self.client.get(f"/instances/{segment(self.id)}/logs", params={"after": after})
        return [
            LogLine(id=int(line.get("id", 0)), text=str(line.get("logline", "")))
            for line in lines or []
            if isinstance(line, dict)
        ]

    def servable(self) -> "Servable":
        """The servable it runs, as its class (:class:`~dtaas.app.App` for an app ...)."""
        from .servable import Servable

        return Servable.from_id(self.servable_id, client=self.client)

    def output_servables(self, type: Optional[str] = None) -> List["Servable"]:
        """The servables among its outputs (those of ``type`` when given), each as its class."""
        from .servable import Servable

        found = [
            Servable.from_id(o.id, client=self.client) for o in self.outputs if o.kind == "servable"
        ]
        return [s for s in found if type is None or s.type == type]


__all__ = ["ACTIVE_STATES", "ENDED_STATES", "Instance", "LogLine", "Output", "Resources", "id_of"]
