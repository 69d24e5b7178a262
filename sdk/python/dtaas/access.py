"""Access: the capabilities, who holds what on an object, granting and revoking, and the
delegation requests of running servables. :mod:`dtaas.capability` is where the SDK's users
find all of it (with :func:`~dtaas.capability.resolve_delegation_request`); this module is
what the servable classes build on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, Iterable, List, Optional, Union

from .client import Client, id_of, record_id, resolve, segment


class Capability(str, Enum):
    """The seven capabilities of the model."""

    #: See the object's type and id.
    DISCOVER = "DISCOVER"
    #: Use the object to make new ones (servables from a prototype).
    CREATE = "CREATE"
    #: Read all its information.
    READ = "READ"
    #: Change its state: start, stop, edit.
    UPDATE = "UPDATE"
    #: Delete it.
    DELETE = "DELETE"
    #: Grant and revoke capabilities on it.
    MANAGE = "MANAGE"
    #: Send HTTP requests to a servable.
    REQUEST = "REQUEST"

    def __str__(self) -> str:
        return self.value


CapabilityLike = Union[Capability, str]


def _names(capabilities: Iterable[CapabilityLike]) -> List[str]:
    """Capability names, checked."""
    names = []
    for c in capabilities:
        names.append(Capability(c.upper() if isinstance(c, str) else c).value)
    return names


@dataclass(frozen=True)
class Grant:
    """What one principal holds on an object."""

    principal: str
    #: ``user``, ``servable``, ``trust`` or ``everyone``.
    kind: str
    name: str
    capabilities: List[Capability]


@dataclass(frozen=True)
class AccessList:
    """An object's owner (who holds every capability) and its grants."""

    object: str
    kind: str
    owner: Optional[str]
    grants: List[Grant]

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "AccessList":
        """The API's access list."""
        return cls(
            object=data.get("object", ""),
            kind=data.get("kind", ""),
            owner=data.get("owner"),
            grants=[
                Grant(
                    principal=g.get("principal", ""),
                    kind=g.get("kind", ""),
                    name=g.get("name", ""),
                    capabilities=[Capability(c) for c in g.get("capabilities", [])],
                )
                for g in data.get("grants", [])
            ],
        )

    def of(self, principal: str) -> List[Capability]:
        """What ``principal`` (an id, or ``everyone``) is granted."""
        for g in self.grants:
            if g.principal == principal:
                return list(g.capabilities)
        return []


@dataclass(frozen=True)
class ObjectInfo:
    """Any object: its kind, owner and what the caller holds on it."""

    id: str
    kind: str
    owner: Optional[str]
    created: Optional[str]
    capabilities: List[Capability]


def object_info(obj: Union[str, Any], *, client: Optional[Client] = None) -> ObjectInfo:
    """An object's kind (``servable``, ``instance``, ``prototype`` ...), owner and the
    caller's capabilities on it (DISCOVER)."""
    data = resolve(client).get(f"/objects/{segment(id_of(obj))}")
    return ObjectInfo(
        id=data["id"],
        kind=data.get("kind", ""),
        owner=data.get("owner"),
        created=data.get("created"),
        capabilities=[Capability(c) for c in data.get("capabilities", [])],
    )


def access_list(obj: Union[str, Any], *, client: Optional[Client] = None) -> AccessList:
    """An object's access list (MANAGE on it)."""
    return AccessList.from_json(resolve(client).get(f"/objects/{segment(id_of(obj))}/access"))


def grant(
    obj: Union[str, Any],
    principal: Union[str, Any],
    capabilities: Iterable[CapabilityLike],
    *,
    client: Optional[Client] = None,
) -> AccessList:
    """Grants ``capabilities`` on ``obj`` to ``principal`` (MANAGE on it); what the principal
    held stays. ``principal``: a user's id or login, a servable or trust (or its id), or
    ``everyone``. Answers the new access list."""
    body = {"principal": id_of(principal), "capabilities": _names(capabilities)}
    return AccessList.from_json(
        resolve(client).post(f"/objects/{segment(id_of(obj))}/access", body)
    )


def revoke(
    obj: Union[str, Any],
    principal: Union[str, Any],
    capabilities: Optional[Iterable[CapabilityLike]] = None,
    *,
    client: Optional[Client] = None,
) -> AccessList:
    """Takes ``capabilities`` on ``obj`` away from ``principal`` (MANAGE on it); all that the
    caller holds itself when ``capabilities`` is ``None``. Answers the new access list."""
    params = None if capabilities is None else {"capabilities": ",".join(_names(capabilities))}
    path = f"/objects/{segment(id_of(obj))}/access/{segment(id_of(principal))}"
    return AccessList.from_json(resolve(client).delete(path, params=params))


class DelegationRequest:
    """What a running servable asked of the principal that ran it.

    Attributes:
        id: The request's id.
        servable: The servable asking; ``instance``: the instance whose start asked.
        object: The object it needs capabilities on; ``capabilities``: which.
        state: ``pending``, ``granted`` or ``refused``.
        requested_from: The principal that ran the servable, who resolves it.
        reason: Why it is needed (``capabilities`` of the prototype, or ``config.<path>``).
        automatic: Granted without asking (the runner held it when the servable started).
        created, resolved: When (ISO 8601); ``resolved_by``: who resolved it.
        data: The API's whole answer.
    """

    def __init__(self, data: Dict[str, Any], client: Client) -> None:
        self.client = client
        self._load(data)

    def _load(self, data: Dict[str, Any]) -> None:
        self.id: str = record_id(data, "a delegation request")
        self.data = data
        self.servable: str = data.get("servable", "")
        self.instance: str = data.get("instance", "")
        self.object: str = data.get("object", "")
        self.capabilities: List[Capability] = [Capability(c) for c in data.get("capabilities", [])]
        self.state: str = data.get("state", "")
        self.requested_from: str = data.get("requested_from", "")
        self.reason: str = data.get("reason", "")
        self.automatic: bool = bool(data.get("automatic", False))
        self.created: Optional[str] = data.get("created")
        self.resolved: Optional[str] = data.get("resolved")
        self.resolved_by: Optional[str] = data.get("resolved_by")

    def __repr__(self) -> str:
        caps = ",".join(c.value for c in self.capabilities)
        return f"DelegationRequest(id={self.id!r}, {caps} on {self.object!r}, state={self.state!r})"

    @classmethod
    def from_id(cls, request_id: str, *, client: Optional[Client] = None) -> "DelegationRequest":
        """The request with this id (READ on it: its runner, or the servable asking)."""
        c = resolve(client)
        return cls(c.get(f"/delegation-requests/{segment(request_id)}"), c)

    @classmethod
    def list(
        cls,
        servable: Union[str, Any, None] = None,
        state: Optional[str] = None,
        *,
        client: Optional[Client] = None,
    ) -> List["DelegationRequest"]:
        """The requests the caller may read: those addressed to it and, for a servable, its
        own; only those of ``servable`` and in ``state`` when given."""
        c = resolve(client)
        params = {"servable": None if servable is None else id_of(servable), "state": state}
        return [cls(d, c) for d in c.pages("/delegation-requests", params)]

    def refresh(self) -> "DelegationRequest":
        """Reads it again; answers itself."""
        self._load(self.client.get(f"/delegation-requests/{segment(self.id)}"))
        return self

    def grant(self) -> "DelegationRequest":
        """Grants it from what the caller holds (UPDATE on the request)."""
        self._load(self.client.post(f"/delegation-requests/{segment(self.id)}/grant"))
        return self

    def refuse(self) -> "DelegationRequest":
        """Refuses it (UPDATE on the request)."""
        self._load(self.client.post(f"/delegation-requests/{segment(self.id)}/refuse"))
        return self


__all__ = [
    "AccessList",
    "Capability",
    "CapabilityLike",
    "DelegationRequest",
    "Grant",
    "ObjectInfo",
    "access_list",
    "grant",
    "object_info",
    "revoke",
]
