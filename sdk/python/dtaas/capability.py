"""Capabilities: who may do what with an object, granting and revoking them, and the
delegation requests of running servables.

There are seven capabilities (:class:`Capability`). The creator of an object holds all of them;
granting needs MANAGE on the object, and a principal grants only what it holds. A principal is
a user (id or login), a servable id, a trust id, or ``everyone``.

When a servable runs, what its prototype's ``capabilities`` and ``config-capabilities`` say it
needs is delegated from the runner at once when the runner's account owns the servable and its
prototype; anything else becomes a pending :class:`DelegationRequest` addressed to the runner,
which :func:`resolve_delegation_request` grants (or refuses).
"""

from __future__ import annotations

from typing import Any, List, Optional, Union

from .access import (
    AccessList,
    Capability,
    CapabilityLike,
    DelegationRequest,
    Grant,
    ObjectInfo,
    access_list,
    grant,
    object_info,
    revoke,
)
from .client import Client, resolve
from .servable import Instance, Servable


def resolve_delegation_request(
    target: Union[DelegationRequest, Instance, Any, str, None] = None,
    grant: bool = True,
    *,
    client: Optional[Client] = None,
) -> List[DelegationRequest]:
    """Grants (or, with ``grant=False``, refuses) delegation requests; answers those resolved.

    Args:
        target: What to resolve:

            - a :class:`DelegationRequest` (or its id): that request;
            - an :class:`~dtaas.instance.Instance` (or its id): the pending requests its start
              made (e.g. ``app.run()``'s, for the capabilities its ``config-capabilities``
              asked on the ids in its config);
            - a servable (or its id): its pending requests;
            - ``None``: every pending request addressed to the caller.

            When the appliance could delegate everything at once (the runner's account owns
            the servable and its prototype and held what was needed), nothing is pending and
            the answer is empty.
        grant: Grant (default) or refuse.
        client: The client to use (default: :func:`~dtaas.client.default_client`).

    Raises:
        Forbidden: the caller does not hold what a request asks (a grant is made only from
            what the granting principal holds). Conflict: a request given by id was resolved
            the other way already (the same way again answers it as it is).
    """
    c = resolve(client)
    if target is None:
        me = c.me().get("id")
        pending = DelegationRequest.list(state="pending", client=c)
        chosen = [r for r in pending if r.requested_from == me]
    elif isinstance(target, DelegationRequest):
        chosen = [target]
    elif isinstance(target, Instance):
        chosen = _pending_of_instance(target.servable_id, target.id, c)
    elif isinstance(target, Servable):
        chosen = DelegationRequest.list(servable=target.id, state="pending", client=c)
    elif isinstance(target, str):
        kind = object_info(target, client=c).kind
        if kind == "delegation_request":
            chosen = [DelegationRequest.from_id(target, client=c)]
        elif kind == "instance":
            chosen = _pending_of_instance(Instance.from_id(target, client=c).servable_id, target, c)
        elif kind == "servable":
            chosen = DelegationRequest.list(servable=target, state="pending", client=c)
        else:
            raise TypeError(
                f"{target} is a {kind}: give a delegation request, an instance or a servable"
            )
    else:
        raise TypeError(
            f"a delegation request, an instance or a servable is expected, not {type(target).__name__}"
        )
    for request in chosen:
        if grant:
            request.grant()
        else:
            request.refuse()
    return chosen


def _pending_of_instance(servable: str, instance: str, client: Client) -> List[DelegationRequest]:
    """The pending requests the start of ``instance`` made."""
    pending = DelegationRequest.list(servable=servable, state="pending", client=client)
    return [r for r in pending if r.instance == instance]


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
    "resolve_delegation_request",
    "revoke",
]
