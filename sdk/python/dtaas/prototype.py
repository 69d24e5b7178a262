"""Prototypes: the registered images servables are made from, and the servable types.

A project's manifest (``MANIFEST.json``) declares prototypes by name; :func:`register` (what
``dtaas upload`` does after pushing the images) registers all of them or none.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Union

from .client import Client, record_id, resolve, segment


@dataclass(frozen=True)
class ServableType:
    """A servable type (``GET /v1/types``)."""

    name: str
    http: bool
    restarts_on_failure: bool
    description: str


def types(*, client: Optional[Client] = None) -> List[ServableType]:
    """The servable types of the appliance."""
    return [
        ServableType(
            name=t["name"],
            http=bool(t.get("http")),
            restarts_on_failure=bool(t.get("restarts_on_failure")),
            description=t.get("description", ""),
        )
        for t in resolve(client).get("/types")
    ]


class Prototype:
    """A registered prototype.

    Attributes:
        id: Its id.
        name, tag: What it is registered as (``reference`` is ``name:tag``).
        type: The type of the servables made from it.
        image: Its image in the appliance's registry (``repository:tag``).
        dependencies: Prototype names to the ids of the prototypes they stand for.
        arguments: The manifest's ``arguments`` (a daemon's ``volume_location`` ...).
        capabilities: Prototype ids to the capabilities its servables need on them.
        config_capabilities: The manifest's ``config-capabilities``.
        dockerfile, context: Where its image is built from, when the manifest says.
        owner: The owning account.
        created: When (ISO 8601).
        data: The API's whole answer.
    """

    def __init__(self, data: Dict[str, Any], client: Client) -> None:
        self.client = client
        self.id: str = record_id(data, "a prototype")
        self.data = data
        self.name: str = data.get("name", "")
        self.tag: str = data.get("tag", "")
        self.type: str = data.get("type", "")
        self.image: str = data.get("image", "")
        self.dependencies: Dict[str, str] = dict(data.get("dependencies") or {})
        self.arguments: Dict[str, Any] = dict(data.get("arguments") or {})
        self.capabilities: Dict[str, List[str]] = dict(data.get("capabilities") or {})
        self.config_capabilities: Any = data.get("config-capabilities") or {}
        self.dockerfile: Optional[str] = data.get("dockerfile")
        self.context: Optional[str] = data.get("context")
        self.owner: Optional[str] = data.get("owner")
        self.created: Optional[str] = data.get("created")

    def __repr__(self) -> str:
        return f"Prototype(id={self.id!r}, reference={self.reference!r}, type={self.type!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prototype) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def reference(self) -> str:
        """``name:tag``."""
        return f"{self.name}:{self.tag}"

    @classmethod
    def from_id(cls, prototype: str, *, client: Optional[Client] = None) -> "Prototype":
        """The prototype with this id or ``name:tag`` (READ on it)."""
        c = resolve(client)
        return cls(c.get(f"/prototypes/{segment(prototype)}"), c)

    @classmethod
    def list(
        cls, type: Optional[str] = None, *, client: Optional[Client] = None
    ) -> List["Prototype"]:
        """The prototypes the caller may read (only those of ``type`` when given)."""
        c = resolve(client)
        return [cls(d, c) for d in c.pages("/prototypes", {"type": type})]

    def delete(self) -> None:
        """Deletes it (DELETE); refused (Conflict) while prototypes or servables use it."""
        self.client.delete(f"/prototypes/{segment(self.id)}")


def register(
    manifest: Union[Mapping[str, Any], str, "os.PathLike[str]"],
    *,
    client: Optional[Client] = None,
) -> List[Prototype]:
    """Registers every prototype of a project manifest, or none (each problem is in the
    error's ``details``). The images must be in the appliance's registry already.

    Args:
        manifest: The manifest as a dict, or the path of a ``MANIFEST.json`` (or of the
            directory holding it, ``MANIFEST`` or ``MANIFEST.json``).
    """
    if isinstance(manifest, Mapping):
        body: Any = dict(manifest)
    else:
        path = os.fspath(manifest)
        if os.path.isdir(path):
            for name in ("MANIFEST", "MANIFEST.json"):
                if os.path.isfile(os.path.join(path, name)):
                    path = os.path.join(path, name)
                    break
        with open(path, encoding="utf-8") as f:
            body = json.load(f)
    c = resolve(client)
    return [Prototype(d, c) for d in c.post("/prototypes", body)]


__all__ = ["Prototype", "ServableType", "register", "types"]
