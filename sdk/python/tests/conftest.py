"""Fixtures of the SDK tests, which run against a real appliance.

``cargo test --test integration python_sdk`` (tests/integration/python_sdk.rs) starts the
server, makes two users with API keys, pushes the test images (``images/``) into its registry
and runs ``/usr/bin/python3 -m pytest sdk/python/tests`` with:

- ``DTAAS_URL``, ``DTAAS_API_KEY``: the first user's (what ``eval $(dtaas export)`` sets);
- ``DTAAS_TEST_LOGIN``, ``DTAAS_TEST_PASSWORD``: the first user's login and password;
- ``DTAAS_TEST_OTHER_LOGIN``, ``DTAAS_TEST_OTHER_KEY``: the second user's login and key;
- ``DTAAS_TEST_TAG``: the tag of the pushed images;
- ``DTAAS_TEST_CLI``: the ``dtaas`` binary (for a profile file written by the real CLI).
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List

import pytest

from dtaas import errors
from dtaas.client import Client, set_default_client
from dtaas.instance import Resources
from dtaas.prototype import Prototype, register
from dtaas.servable import Servable

REQUIRED = (
    "DTAAS_URL",
    "DTAAS_API_KEY",
    "DTAAS_TEST_LOGIN",
    "DTAAS_TEST_PASSWORD",
    "DTAAS_TEST_OTHER_LOGIN",
    "DTAAS_TEST_OTHER_KEY",
    "DTAAS_TEST_TAG",
    "DTAAS_TEST_CLI",
)

#: Small servables: the tests run beside others on two cores.
SMALL = Resources(cpu_cores=0.5, ram=64)

#: The busybox image's names in the registry, by the type of their prototype.
BUSYBOX = {
    "sdk-app": "app",
    "sdk-asker": "app",
    "sdk-daemon": "daemon",
    "sdk-dataset": "dataset",
    "sdk-model": "model",
    "sdk-report": "report",
    "sdk-pipeline": "pipeline",
    "sdk-spare": "pipeline",
}


def pytest_configure(config: pytest.Config) -> None:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        raise pytest.UsageError(
            "the SDK tests run against a real appliance set up by "
            "`cargo test --test integration python_sdk` (tests/integration/python_sdk.rs); "
            "missing: " + ", ".join(missing)
        )


@pytest.fixture(autouse=True)
def _no_default_left() -> Iterator[None]:
    """Each test starts and ends with the default client found from the environment."""
    set_default_client(None)
    yield
    set_default_client(None)


@pytest.fixture(scope="session")
def url() -> str:
    return os.environ["DTAAS_URL"]


@pytest.fixture(scope="session")
def tag() -> str:
    return os.environ["DTAAS_TEST_TAG"]


@pytest.fixture(scope="session")
def alice(url: str) -> Client:
    """The first user, explicitly (the default client is the same user, from DTAAS_*)."""
    return Client(url, os.environ["DTAAS_API_KEY"])


@pytest.fixture(scope="session")
def bob(url: str) -> Client:
    """The second user."""
    return Client(url, os.environ["DTAAS_TEST_OTHER_KEY"])


def _entry(name: str, kind: str, tag: str) -> Dict[str, object]:
    entry: Dict[str, object] = {
        "name": name,
        "tag": tag,
        "type": kind,
        "dependencies": {},
        "arguments": {},
        "capabilities": {},
        "config-capabilities": {},
    }
    if kind == "daemon":
        entry["arguments"] = {"volume_location": "/data", "volume_size": 1}
    if name == "sdk-asker":
        entry["config-capabilities"] = {"target": ["READ"]}
    return entry


@pytest.fixture(scope="session")
def prototypes(tag: str, alice: Client) -> Iterator[Dict[str, Prototype]]:
    """The test prototypes (all but ``sdk-spare``), registered once through the SDK."""
    manifest = {
        name: _entry(name, kind, tag) for name, kind in BUSYBOX.items() if name != "sdk-spare"
    }
    manifest["sdk-probe"] = _entry("sdk-probe", "pipeline", tag)
    registered = {p.name: p for p in register(manifest)}
    assert set(registered) == set(manifest)
    yield registered
    for p in registered.values():
        try:
            p.delete()
        except errors.NotFound:
            pass


@pytest.fixture
def cleanup() -> Iterator[List[Servable]]:
    """Servables a test made: deleted when it ends, however it ends."""
    made: List[Servable] = []
    yield made
    for servable in reversed(made):
        try:
            servable.delete()
        except errors.NotFound:
            pass


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A servable name for this test."""
    return request.node.name[:60]
