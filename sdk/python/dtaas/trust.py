"""Trusts: named groups of principals and objects.

The creator of a trust is its first trustee. Trustees hold MANAGE on the trust and on every
object placed in it; they add members, other trustees and objects. What was granted through a
trust goes when the trust is deleted.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from .client import Client, id_of, record_id, resolve, segment


class Trust:
    """A trust.

    Attributes:
        id, name: The trust's id and name.
        owner: The account that created it.
        created: When (ISO 8601).
        trustees, members: Principal ids in each role (read with :meth:`refresh`; the list
            answers only ``id``, ``name``, ``owner`` and ``created``).
        objects: Ids of the objects placed in it.
        data: The API's whole answer.
    """

    def __init__(self, data: Dict[str, Any], client: Client) -> None:
        self.client = client
        self._load(data)

    def _load(self, data: Dict[str, Any]) -> None:
        self.id: str = record_id(data, "a trust")
        self.data = data
        self.name: str = data.get("name", "")
        self.owner: Optional[str] = data.get("owner")
        self.created: Optional[str] = data.get("created")
        self.trustees: List[str] = list(data.get("trustees") or [])
        self.members: List[str] = list(data.get("members") or [])
        self.objects: List[str] = list(data.get("objects") or [])

    def __repr__(self) -> str:
        return f"Trust(id={self.id!r}, name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trust) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @classmethod
    def create(cls, name: str, *, client: Optional[Client] = None) -> "Trust":
        """Creates a trust; the caller becomes its first trustee."""
        c = resolve(client)
        return cls(c.post("/trusts", {"name": name}), c)

    @classmethod
    def from_id(cls, trust_id: str, *, client: Optional[Client] = None) -> "Trust":
        """The trust with this id, with its trustees, members and objects (READ on it)."""
        c = resolve(client)
        return cls(c.get(f"/trusts/{segment(trust_id)}"), c)

    @classmethod
    def list(cls, *, client: Optional[Client] = None) -> List["Trust"]:
        """The trusts the caller may read (without their members: see :meth:`refresh`)."""
        c = resolve(client)
        return [cls(d, c) for d in c.pages("/trusts")]

    def refresh(self) -> "Trust":
        """Reads it again, with its trustees, members and objects; answers itself."""
        self._load(self.client.get(f"/trusts/{segment(self.id)}"))
        return self

    def add_member(self, principal: Union[str, Any], role: str = "member") -> "Trust":
        """Adds a principal (a user's id or login, or a servable) as ``member`` or
        ``trustee`` (MANAGE on the trust)."""
        body = {"principal": id_of(principal), "role": role}
        self._load(self.client.post(f"/trusts/{segment(self.id)}/members", body))
        return self

    def remove_member(self, principal: Union[str, Any]) -> "Trust":
        """Removes a member or trustee (MANAGE on the trust); the last trustee stays
        (Conflict)."""
        path = f"/trusts/{segment(self.id)}/members/{segment(id_of(principal))}"
        self._load(self.client.delete(path))
        return self

    def add_object(self, obj: Union[str, Any]) -> "Trust":
        """Places an object in the trust (MANAGE on both): its trustees then hold MANAGE on it."""
        self._load(self.client.post(f"/trusts/{segment(self.id)}/objects", {"object": id_of(obj)}))
        return self

    def remove_object(self, obj: Union[str, Any]) -> "Trust":
        """Takes an object out of the trust (MANAGE on the trust)."""
        self._load(self.client.delete(f"/trusts/{segment(self.id)}/objects/{segment(id_of(obj))}"))
        return self

    def delete(self) -> None:
        """Deletes it (DELETE); what was granted through it goes."""
        self.client.delete(f"/trusts/{segment(self.id)}")


__all__ = ["Trust"]
