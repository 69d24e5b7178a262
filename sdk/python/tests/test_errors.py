"""How failures become exceptions: the appliance's errors by code, and what is not the
appliance's answer (another server, no server) without its body."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Iterator, List, Type

import pytest

from conftest import SMALL
from dtaas import errors
from dtaas.capability import object_info
from dtaas.client import Client
from dtaas.instance import Instance
from dtaas.pipeline import Pipeline
from dtaas.prototype import Prototype, types
from dtaas.servable import Servable

UNKNOWN = "0123456789abcdef0123456789abcdef"
SECRET = "SECRET-BODY-OF-ANOTHER-SERVER"


def test_an_unknown_id_is_not_found_with_the_apis_code_and_message() -> None:
    with pytest.raises(errors.NotFound) as e:
        Instance.from_id(UNKNOWN)
    err = e.value
    assert (err.status, err.code) == (404, "not_found")
    assert "not found" in err.message.lower()
    assert str(err).startswith("[404 not_found] ")
    assert isinstance(err, errors.DtaasError)


def test_a_wrong_key_is_unauthorized(url: str) -> None:
    with pytest.raises(errors.Unauthorized) as e:
        Client(url, "dtaas_not-a-key").me()
    assert (e.value.status, e.value.code) == (401, "unauthorized")


def test_what_another_user_cannot_see_is_not_found_and_what_it_may_only_read_is_forbidden(
    prototypes: dict, bob: Client, cleanup: List[Servable], name: str
) -> None:
    mine = Pipeline.create(prototypes["sdk-pipeline"], name=name, resources=SMALL)
    cleanup.append(mine)
    with pytest.raises(errors.NotFound):
        Pipeline.from_id(mine.id, client=bob)
    with pytest.raises(errors.NotFound):
        object_info(mine, client=bob)
    from dtaas.capability import grant

    grant(mine, bob.me()["id"], ["READ"])
    seen = Pipeline.from_id(mine.id, client=bob)
    with pytest.raises(errors.Forbidden) as e:
        seen.delete()
    assert (e.value.status, e.value.code) == (403, "forbidden")
    assert Pipeline.from_id(mine.id).id == mine.id


def test_codes_choose_the_class_and_unknown_codes_fall_back_on_the_status() -> None:
    table: List[tuple] = [
        (400, "bad_request", errors.BadRequest),
        (400, "invalid", errors.BadRequest),
        (401, "unauthorized", errors.Unauthorized),
        (403, "forbidden", errors.Forbidden),
        (404, "not_found", errors.NotFound),
        (409, "conflict", errors.Conflict),
        (413, "too_large", errors.TooLarge),
        (429, "rate_limited", errors.RateLimited),
        (500, "internal", errors.ServerError),
        (503, "unavailable", errors.ServerError),
        (502, "bad_gateway", errors.ServerError),
        (503, "engine_unavailable", errors.ServerError),
        (502, "engine_failed", errors.ServerError),
        # A code this SDK does not know: the status decides.
        (409, "brand_new", errors.Conflict),
        (504, "brand_new", errors.ServerError),
        (418, "brand_new", errors.DtaasError),
    ]
    for status, code, cls in table:
        err = errors.error_for(status, code, "m", [{"item": "a", "field": "b", "message": "c"}])
        assert type(err) is cls, (status, code)
        assert (err.status, err.code, err.message) == (status, code, "m")
        assert str(err) == f"[{status} {code}] m\n  a: b: c"


class _Other(http.server.BaseHTTPRequestHandler):
    """A server that is not the appliance."""

    def do_GET(self) -> None:
        answers = {
            "/v1/me": (502, "text/html", f"<h1>Bad Gateway</h1>{SECRET}"),
            "/v1/types": (200, "text/plain", f"not json {SECRET}"),
            "/v1/servables": (200, "application/json", json.dumps({"not": "a list"})),
            "/v1/prototypes/x": (401, "application/json", json.dumps({"error": SECRET})),
            "/v1/instances/y": (404, "application/json", json.dumps({"message": SECRET})),
        }
        status, kind, body = answers.get(self.path.split("?")[0], (500, "text/plain", SECRET))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Other)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_another_servers_answers_are_unexpected_and_never_copied(other_server: str) -> None:
    other = Client(other_server, "dtaas_x")
    calls = [
        (other.me, 502),
        (lambda: types(client=other), 200),
        (lambda: Servable.list(client=other), 200),
        (lambda: Prototype.from_id("x", client=other), 401),
        (lambda: Instance.from_id("y", client=other), 404),
    ]
    for call, status in calls:
        with pytest.raises(errors.UnexpectedResponse) as e:
            call()
        assert e.value.code == "unexpected_response"
        assert e.value.status == status
        assert SECRET not in str(e.value) and SECRET not in e.value.message


def test_signing_in_to_another_server_is_unexpected(other_server: str) -> None:
    from dtaas import login

    with pytest.raises(errors.UnexpectedResponse) as e:
        login(other_server, "alice", "pw")
    assert SECRET not in str(e.value)


def test_no_server_is_a_connection_failure() -> None:
    with pytest.raises(errors.ConnectionFailed) as e:
        Client("http://127.0.0.1:1", "dtaas_x").me()
    assert e.value.code == "connection" and e.value.status is None
    assert "127.0.0.1:1" in e.value.message


def test_every_sdk_error_is_a_dtaas_error() -> None:
    classes: List[Type[errors.DtaasError]] = [
        getattr(errors, n) for n in errors.__all__ if n not in ("DtaasError", "error_for")
    ]
    assert classes and all(issubclass(c, errors.DtaasError) for c in classes)
    codes = {c.code for c in classes}
    assert {"configuration", "connection", "unexpected_response", "wrong_type", "timeout"} <= codes
