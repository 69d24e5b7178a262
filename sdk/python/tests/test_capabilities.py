"""Capabilities granted and revoked, trusts, and delegation requests resolved, between two
real users."""

from __future__ import annotations

import time
from typing import Dict, List

import pytest

from conftest import SMALL
from dtaas import errors
from dtaas.app import App
from dtaas.capability import (
    AccessList,
    Capability,
    DelegationRequest,
    access_list,
    grant,
    object_info,
    resolve_delegation_request,
    revoke,
)
from dtaas.client import Client
from dtaas.daemon import Daemon
from dtaas.instance import Instance
from dtaas.pipeline import Pipeline
from dtaas.prototype import Prototype
from dtaas.servable import Servable
from dtaas.trust import Trust

ALL = [c.value for c in Capability]


def test_the_seven_capabilities() -> None:
    assert ALL == ["DISCOVER", "CREATE", "READ", "UPDATE", "DELETE", "MANAGE", "REQUEST"]
    assert str(Capability.READ) == "READ" and Capability("MANAGE") is Capability.MANAGE


def test_grant_and_revoke_on_a_servable(
    prototypes: Dict[str, Prototype], alice: Client, bob: Client, cleanup: List[Servable], name: str
) -> None:
    me, other = alice.me(), bob.me()
    mine = Pipeline.create(prototypes["sdk-pipeline"], name=name, resources=SMALL)
    cleanup.append(mine)
    info = object_info(mine)
    assert (info.id, info.kind, info.owner) == (mine.id, "servable", me["id"])
    assert sorted(c.value for c in info.capabilities) == sorted(ALL)
    assert access_list(mine).owner == me["id"]

    # By login, with names in any case and as the enum.
    granted = grant(mine, other["login"], ["read", Capability.DISCOVER])
    assert isinstance(granted, AccessList) and granted.object == mine.id
    assert sorted(c.value for c in granted.of(other["id"])) == ["DISCOVER", "READ"]
    (entry,) = [g for g in granted.grants if g.principal == other["id"]]
    assert (entry.kind, entry.name) == ("user", other["login"])
    assert sorted(c.value for c in object_info(mine, client=bob).capabilities) == [
        "DISCOVER",
        "READ",
    ]
    assert Pipeline.from_id(mine.id, client=bob).name == name
    # Bob may not manage it.
    with pytest.raises(errors.Forbidden):
        access_list(mine, client=bob)
    with pytest.raises(errors.Forbidden):
        grant(mine, other["id"], ["DELETE"], client=bob)

    after = revoke(mine, other["id"], [Capability.READ])
    assert [c.value for c in after.of(other["id"])] == ["DISCOVER"]
    with pytest.raises(errors.Forbidden):
        Pipeline.from_id(mine.id, client=bob)
    assert revoke(mine, other["login"]).of(other["id"]) == []
    with pytest.raises(errors.NotFound):
        Pipeline.from_id(mine.id, client=bob)
    with pytest.raises(ValueError):
        grant(mine, other["id"], ["FLY"])


def test_a_trust_with_a_member_and_an_object(
    prototypes: Dict[str, Prototype], alice: Client, bob: Client, cleanup: List[Servable], name: str
) -> None:
    me, other = alice.me(), bob.me()
    trust = Trust.create(name)
    try:
        assert (trust.name, trust.owner, trust.trustees, trust.members) == (
            name,
            me["id"],
            [me["id"]],
            [],
        )
        assert trust in Trust.list()
        with pytest.raises(errors.NotFound):
            Trust.from_id(trust.id, client=bob)
        trust.add_member(other["login"])
        assert trust.members == [other["id"]]
        assert Trust.from_id(trust.id, client=bob).name == name

        thing = Pipeline.create(prototypes["sdk-pipeline"], name=name, resources=SMALL)
        cleanup.append(thing)
        assert trust.add_object(thing).objects == [thing.id]
        assert Trust.from_id(trust.id).objects == [thing.id]
        assert trust.remove_object(thing.id).objects == []

        trust.add_member(other["id"], role="trustee")
        assert sorted(trust.refresh().trustees) == sorted([me["id"], other["id"]])
        trust.remove_member(other["id"])
        assert trust.trustees == [me["id"]] and trust.members == []
        with pytest.raises(errors.Conflict):
            trust.remove_member(me["id"])  # the last trustee stays
    finally:
        trust.delete()
    with pytest.raises(errors.NotFound):
        Trust.from_id(trust.id)


def _pending(servable: Servable, client: Client) -> List[DelegationRequest]:
    """The servable's pending requests, once its start has made them."""
    for _ in range(40):
        found = DelegationRequest.list(servable=servable, state="pending", client=client)
        if found:
            return found
        time.sleep(0.25)
    return []


def test_delegation_is_automatic_for_what_the_runner_owns(
    prototypes: Dict[str, Prototype], tag: str, alice: Client, cleanup: List[Servable], name: str
) -> None:
    daemon = Daemon.create(prototypes["sdk-daemon"], name=name + "-d", resources=SMALL)
    cleanup.append(daemon)
    target = daemon.run()
    app = App.create(f"sdk-asker:{tag}", name=name, config={"target": target.id}, resources=SMALL)
    cleanup.append(app)
    run = app.run()
    assert resolve_delegation_request(run) == []  # nothing pending
    (request,) = app.delegation_requests()
    assert (request.state, request.automatic, request.object) == ("granted", True, target.id)
    assert [c.value for c in request.capabilities] == ["READ"]
    assert request.requested_from == alice.me()["id"] and request.reason == "config.target"


def test_pending_requests_are_granted_refused_and_resolved_every_way(
    prototypes: Dict[str, Prototype], tag: str, bob: Client, cleanup: List[Servable], name: str
) -> None:
    other = bob.me()
    # Bob may make servables of Alice's prototypes; running them, he does not own the
    # prototype, so what they ask of him is a request he resolves.
    for p in ("sdk-daemon", "sdk-asker"):
        grant(prototypes[p], other["login"], ["CREATE", "READ"])
    daemon = Daemon.create(f"sdk-daemon:{tag}", name=name + "-d", resources=SMALL, client=bob)
    cleanup.append(daemon)
    target = daemon.run()

    def asker(suffix: str) -> App:
        made = App.create(
            f"sdk-asker:{tag}",
            name=name + suffix,
            config={"target": target.id},
            resources=SMALL,
            client=bob,
        )
        cleanup.append(made)
        return made

    # 1. By the instance whose start asked: granted.
    first = asker("-1")
    first_run = first.run()
    (pending,) = _pending(first, bob)
    assert (pending.object, pending.instance, pending.requested_from) == (
        target.id,
        first_run.id,
        other["id"],
    )
    assert [c.value for c in pending.capabilities] == ["READ"] and not pending.automatic
    assert pending.reason == "config.target"
    done = resolve_delegation_request(first_run, client=bob)
    assert [r.id for r in done] == [pending.id] and done[0].state == "granted"
    again = DelegationRequest.from_id(pending.id, client=bob)
    assert again.state == "granted" and again.resolved_by == other["id"] and again.resolved
    assert first.delegation_requests("pending") == []
    assert [r.id for r in first.delegation_requests()] == [pending.id]
    # Resolved already: the same way again answers the same; the other way is a conflict.
    (same,) = resolve_delegation_request(pending.id, client=bob)
    assert (same.id, same.state) == (pending.id, "granted")
    with pytest.raises(errors.Conflict) as e:
        resolve_delegation_request(pending.id, grant=False, client=bob)
    assert "already granted" in e.value.message

    # 2. By the servable's id, refused.
    second = asker("-2")
    second.run()
    (asked,) = _pending(second, bob)
    (refused,) = resolve_delegation_request(second.id, grant=False, client=bob)
    assert (refused.id, refused.state) == (asked.id, "refused")
    assert asked.refresh().state == "refused"

    # 3. By the request's id, and 4. everything pending for the caller.
    third = asker("-3")
    third.run()
    (asked_third,) = _pending(third, bob)
    (by_id,) = resolve_delegation_request(asked_third.id, client=bob)
    assert by_id.state == "granted"
    fourth = asker("-4")
    fourth.run()
    (asked_fourth,) = _pending(fourth, bob)
    every = resolve_delegation_request(client=bob)
    assert [r.id for r in every] == [asked_fourth.id] and every[0].state == "granted"
    assert DelegationRequest.list(state="pending", client=bob) == []
    listed = {r.id for r in DelegationRequest.list(client=bob)}
    assert {pending.id, asked.id, asked_third.id, asked_fourth.id} <= listed

    # Granting by hand and refusing by hand, on the request itself.
    fifth = asker("-5")
    fifth.run()
    (asked_fifth,) = _pending(fifth, bob)
    assert asked_fifth.refuse().state == "refused"
    with pytest.raises(errors.Conflict):
        asked_fifth.grant()
    with pytest.raises(TypeError):
        resolve_delegation_request(prototypes["sdk-asker"].id, client=bob)
    assert isinstance(Instance.from_id(first_run.id, client=bob), Instance)
