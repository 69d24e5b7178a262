"""Servables: what is made from a prototype with a name, a config and resources, and run.

The classes of the types share this base: :class:`~dtaas.app.App`,
:class:`~dtaas.dataset.Dataset`, :class:`~dtaas.model.Model` and :class:`~dtaas.report.Report`
(served over HTTP behind the appliance's proxy, :class:`HttpServable`),
:class:`~dtaas.daemon.Daemon` and :class:`~dtaas.pipeline.Pipeline`. ``X.create(...)``,
``X.list()`` and ``X.from_id(...)`` of a type's class make, list and find servables of that
type; ``Servable.from_id(...)`` finds one of any type, as its class.

Their runs, :class:`Instance`, and what they may use, :class:`Resources`, live here too (a
servable runs instances, an instance names its servable and the servables it made); their
documented home is :mod:`dtaas.instance`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Iterable, List, Mapping, Optional, Type, TypeVar, Union

import requests

from .access import DelegationRequest
from .client import Client, id_of, record_id, resolve, segment
from .errors import Timeout, WrongType
from .prototype import Prototype

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
        self.id: str = record_id(data, "an instance")
        self.data = data
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
        return Servable.from_id(self.servable_id, client=self.client)

    def output_servables(self, type: Optional[str] = None) -> List["Servable"]:
        """The servables among its outputs (those of ``type`` when given), each as its class."""
        found = [
            Servable.from_id(o.id, client=self.client) for o in self.outputs if o.kind == "servable"
        ]
        return [s for s in found if type is None or s.type == type]


S = TypeVar("S", bound="Servable")

_CLASSES: Dict[str, Type["Servable"]] = {}


@dataclass(frozen=True)
class PrototypeRef:
    """The prototype a servable was made from."""

    id: str
    name: str
    tag: str

    @property
    def reference(self) -> str:
        """``name:tag``."""
        return f"{self.name}:{self.tag}"


class Servable:
    """A servable of any type; the base of the type classes.

    Attributes:
        id: The servable's id.
        type: Its type (``app``, ``daemon``, ``pipeline``, ``dataset``, ``model``, ``report``).
        name: Its name.
        prototype: The prototype it was made from (:class:`PrototypeRef`).
        config: The config its code reads (``dtaas.utils.current_config()``).
        resources: What its containers may use (:class:`~dtaas.instance.Resources`).
        access_control: HTTP types: whether the proxy checks REQUEST on callers.
        owner, creator: The owning account and the principal that created it.
        created: When (ISO 8601).
        volume: A daemon's volume (``name``, ``location``, ``size_mb`` ...), else ``None``.
        unenforced: Limits the engine cannot enforce here, and why.
        current_instance_id: Its latest instance, if any.
        data: The API's whole answer.
    """

    #: The type this class stands for (empty on the base class: any type).
    TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.TYPE:
            _CLASSES[cls.TYPE] = cls

    def __init__(self, data: Dict[str, Any], client: Client) -> None:
        self.client = client
        self._load(data)

    def _load(self, data: Dict[str, Any]) -> None:
        self.id: str = record_id(data, "a servable")
        self.data = data
        self.type: str = data.get("type", "")
        self.name: str = data.get("name", "")
        p = data.get("prototype") or {}
        self.prototype = PrototypeRef(
            id=p.get("id", ""), name=p.get("name", ""), tag=p.get("tag", "")
        )
        self.config: Dict[str, Any] = data.get("config") or {}
        self.resources = Resources.from_json(data.get("resources"))
        self.access_control: bool = bool(data.get("access_control", True))
        self.owner: Optional[str] = data.get("owner")
        self.creator: Optional[str] = data.get("creator")
        self.created: Optional[str] = data.get("created")
        self.volume: Optional[Dict[str, Any]] = data.get("volume")
        self.unenforced: List[str] = list(data.get("unenforced") or [])
        self.current_instance_id: Optional[str] = data.get("current_instance")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Servable) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @staticmethod
    def _wrap(data: Dict[str, Any], client: Client) -> "Servable":
        cls = _CLASSES.get(data.get("type", "") if isinstance(data, dict) else "", Servable)
        return cls(data, client)

    @classmethod
    def _check_type(cls: Type[S], servable: "Servable") -> S:
        if cls.TYPE and servable.type != cls.TYPE:
            raise WrongType(f"servable {servable.id} is a {servable.type}, not a {cls.TYPE}")
        if not isinstance(servable, cls):
            raise WrongType(f"servable {servable.id} is a {servable.type}")
        return servable

    @classmethod
    def create(
        cls: Type[S],
        prototype: Union[str, Any],
        name: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None,
        resources: Union[Resources, Mapping[str, Any], None] = None,
        access_control: Optional[bool] = None,
        *,
        client: Optional[Client] = None,
    ) -> S:
        """Creates a servable from a prototype (CREATE on the prototype).

        Args:
            prototype: The prototype: its id, ``name:tag``, or a
                :class:`~dtaas.prototype.Prototype`. A type's class checks that the prototype
                is of its type.
            name: The servable's name (default: the prototype's name).
            config: What its code reads; where the prototype's ``config-capabilities`` name
                capabilities, the ids of the objects they are needed on.
            resources: What its containers may use (default: the appliance's defaults).
            access_control: HTTP types: whether the proxy checks REQUEST on callers (default
                on). Off: requests pass unchecked and the app authenticates users itself.
            client: The client to use (default: :func:`~dtaas.client.default_client`).
        """
        c = resolve(client)
        reference = id_of(prototype)
        if name is None:
            if not isinstance(prototype, str):
                name = str(getattr(prototype, "name", "")) or reference
            elif ":" in prototype:
                name = prototype.split(":", 1)[0]
            else:
                name = Prototype.from_id(prototype, client=c).name
        body: Dict[str, Any] = {"prototype": reference, "name": name, "config": dict(config or {})}
        if cls.TYPE:
            body["type"] = cls.TYPE
        if resources is not None:
            body["resources"] = (
                resources.to_json() if isinstance(resources, Resources) else dict(resources)
            )
        if access_control is not None:
            body["access_control"] = access_control
        return cls._check_type(cls._wrap(c.post("/servables", body), c))

    @classmethod
    def list(
        cls: Type[S], prototype: Union[str, Any, None] = None, *, client: Optional[Client] = None
    ) -> List[S]:
        """The servables of this class's type the caller may read (every type on the base
        class), oldest first; only those made from ``prototype`` (an id) when given."""
        c = resolve(client)
        params: Dict[str, Any] = {}
        if cls.TYPE:
            params["type"] = cls.TYPE
        if prototype is not None:
            params["prototype"] = id_of(prototype)
        return [cls._check_type(cls._wrap(d, c)) for d in c.pages("/servables", params)]

    @classmethod
    def from_id(cls: Type[S], servable_id: str, *, client: Optional[Client] = None) -> S:
        """The servable with this id (READ on it), as its type's class.

        Raises:
            WrongType: it exists but is not of this class's type.
        """
        c = resolve(client)
        return cls._check_type(cls._wrap(c.get(f"/servables/{segment(servable_id)}"), c))

    def refresh(self: S) -> S:
        """Reads the servable again; answers itself."""
        self._load(self.client.get(f"/servables/{segment(self.id)}"))
        return self

    def run(self) -> Instance:
        """Runs the servable (UPDATE): a new instance, answered once its container runs. What
        it needs on other objects is delegated from the caller, or requested of it (see
        :func:`~dtaas.capability.resolve_delegation_request`)."""
        instance = Instance(self.client.post(f"/servables/{segment(self.id)}/run"), self.client)
        self.current_instance_id = instance.id
        return instance

    def instances(self) -> List[Instance]:
        """Its instances, oldest first."""
        return [
            Instance(d, self.client)
            for d in self.client.pages(f"/servables/{segment(self.id)}/instances")
        ]

    def current_instance(self) -> Optional[Instance]:
        """Its latest instance (read now), or ``None`` when it never ran."""
        self.refresh()
        if self.current_instance_id is None:
            return None
        return Instance.from_id(self.current_instance_id, client=self.client)

    def delegation_requests(self, state: Optional[str] = None) -> List[Any]:
        """The delegation requests it made that the caller may read (``pending``,
        ``granted`` or ``refused`` ones when ``state`` is given)."""
        return DelegationRequest.list(servable=self.id, state=state, client=self.client)

    def delete(self) -> None:
        """Deletes it (DELETE): its instances are stopped and removed, its volume too."""
        self.client.delete(f"/servables/{segment(self.id)}")


class HttpServable(Servable):
    """A servable served over HTTP on port 8080 behind the appliance's proxy (apps, datasets,
    models, reports). Callers need REQUEST on it unless it was made with access control off.

    Attributes:
        url: Where the proxy serves it: ``<scheme>://<id>.<apps-domain>[:port]/``.
        path_url: The same under the appliance's main address: ``.../apps/<id>/``.
    """

    def _load(self, data: Dict[str, Any]) -> None:
        super()._load(data)
        self.url: Optional[str] = data.get("url")
        self.path_url: Optional[str] = data.get("path_url")

    def request(self, method: str, path: str = "/", **kwargs: Any) -> requests.Response:
        """Sends an HTTP request to it through the proxy, in the path form
        (``<appliance>/apps/<id>/<path>``, which needs no name resolution of its own and works
        inside servables too), with the client's key. Answers the app's response as it is: the
        app's statuses are not errors of the SDK.

        Args:
            method: ``GET``, ``POST`` ...
            path: The path in the app (``/``, ``/hello?x=1``).
            kwargs: What :meth:`requests.Session.request` takes (``json``, ``data``,
                ``params``, ``headers`` ...).
        """
        url = f"{self.client.url}/apps/{segment(self.id)}/{path.lstrip('/')}"
        return self.client.send(method, url, **kwargs)

    def get(self, path: str = "/", **kwargs: Any) -> requests.Response:
        """``GET`` of a path of the app (see :meth:`request`)."""
        return self.request("GET", path, **kwargs)


def from_id(servable_id: str, *, client: Optional[Client] = None) -> Servable:
    """The servable with this id, as its type's class."""
    return Servable.from_id(servable_id, client=client)


__all__ = [
    "ACTIVE_STATES",
    "ENDED_STATES",
    "HttpServable",
    "Instance",
    "LogLine",
    "Output",
    "PrototypeRef",
    "Resources",
    "Servable",
    "from_id",
]
