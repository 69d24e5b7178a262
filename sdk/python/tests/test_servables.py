"""Prototypes, the servable classes and their instances, against the real appliance."""

from __future__ import annotations

import time
from typing import Dict, List, Type

import pytest

from conftest import SMALL
from dtaas import errors, servable
from dtaas.app import App
from dtaas.daemon import Daemon
from dtaas.dataset import Dataset
from dtaas.instance import Instance, Output, Resources
from dtaas.model import Model
from dtaas.pipeline import Pipeline
from dtaas.prototype import Prototype, ServableType, register, types
from dtaas.report import Report
from dtaas.servable import HttpServable, Servable


def test_types_are_the_six_of_the_appliance() -> None:
    found = {t.name: t for t in types()}
    assert set(found) == {"app", "daemon", "pipeline", "dataset", "model", "report"}
    assert all(isinstance(t, ServableType) for t in found.values())
    assert found["app"].http and not found["daemon"].http and not found["pipeline"].http
    assert found["daemon"].restarts_on_failure and not found["pipeline"].restarts_on_failure
    assert found["model"].description


def test_registered_prototypes_are_found_by_id_by_name_and_tag_and_listed(
    prototypes: Dict[str, Prototype], tag: str, alice: object
) -> None:
    app = prototypes["sdk-app"]
    assert (app.type, app.tag, app.reference) == ("app", tag, f"sdk-app:{tag}")
    assert app.image.endswith(f"sdk-app:{tag}")
    assert Prototype.from_id(app.id) == app
    assert Prototype.from_id(f"sdk-app:{tag}").id == app.id
    assert prototypes["sdk-daemon"].arguments == {"volume_location": "/data", "volume_size": 1}
    assert prototypes["sdk-asker"].config_capabilities == {"target": ["READ"]}
    listed = Prototype.list()
    assert {p.id for p in prototypes.values()} <= {p.id for p in listed}
    daemons = Prototype.list(type="daemon")
    assert "sdk-daemon" in [p.name for p in daemons] and {p.type for p in daemons} == {"daemon"}
    assert repr(app).startswith("Prototype(")


def test_a_prototype_registers_from_a_manifest_file_and_is_deleted(tmp_path, tag: str) -> None:
    manifest = tmp_path / "MANIFEST.json"
    manifest.write_text(
        '{"sdk-spare": {"name": "sdk-spare", "tag": "%s", "type": "pipeline", '
        '"dependencies": {}, "arguments": {}, "capabilities": {}, "config-capabilities": {}}}' % tag
    )
    (spare,) = register(tmp_path)  # the directory holding MANIFEST.json
    assert spare.reference == f"sdk-spare:{tag}"
    # Registered already: nothing is, and the problem names the prototype.
    with pytest.raises(errors.Conflict) as e:
        register(manifest)
    assert e.value.status == 409 and e.value.code == "conflict"
    assert any(d.get("item") == "sdk-spare" for d in e.value.details), e.value.details
    spare.delete()
    with pytest.raises(errors.NotFound):
        Prototype.from_id(spare.id)


def test_a_prototype_in_use_is_not_deleted(
    prototypes: Dict[str, Prototype], cleanup: List[Servable], name: str
) -> None:
    made = Pipeline.create(prototypes["sdk-pipeline"], name=name, resources=SMALL)
    cleanup.append(made)
    with pytest.raises(errors.Conflict) as e:
        prototypes["sdk-pipeline"].delete()
    assert (
        "sdk-pipeline" in e.value.message or made.id in e.value.message or name in e.value.message
    )


HTTP_CLASSES: List[Type[HttpServable]] = [App, Dataset, Model, Report]


@pytest.mark.parametrize("cls", HTTP_CLASSES, ids=lambda c: c.__name__)
def test_http_servables_are_made_listed_run_reached_and_deleted(
    cls: Type[HttpServable],
    prototypes: Dict[str, Prototype],
    tag: str,
    cleanup: List[Servable],
    name: str,
) -> None:
    kind = cls.TYPE
    made = cls.create(
        f"sdk-{kind}:{tag}", name=name, config={"greeting": "hi", "n": [1, 2]}, resources=SMALL
    )
    cleanup.append(made)
    assert type(made) is cls
    assert (made.type, made.name, made.config) == (kind, name, {"greeting": "hi", "n": [1, 2]})
    assert made.prototype.id == prototypes[f"sdk-{kind}"].id
    assert made.prototype.reference == f"sdk-{kind}:{tag}"
    assert made.resources == SMALL
    assert made.access_control is True
    assert made.url and made.url.startswith(f"http://{made.id}.")
    assert made.path_url and made.path_url.endswith(f"/apps/{made.id}/")
    assert made.current_instance_id is None and made.current_instance() is None

    # Listed by its own class only; found by id, as its class, through any of them.
    assert made in cls.list()
    others = [c for c in HTTP_CLASSES if c is not cls]
    assert all(made not in other.list() for other in others)
    assert made in Servable.list()
    assert made in cls.list(prototype=prototypes[f"sdk-{kind}"])
    assert type(Servable.from_id(made.id)) is cls
    assert type(servable.from_id(made.id)) is cls
    assert cls.from_id(made.id).config == made.config
    with pytest.raises(errors.WrongType) as e:
        others[0].from_id(made.id)
    assert e.value.code == "wrong_type"

    instance = made.run()
    assert isinstance(instance, Instance)
    assert (instance.servable_id, instance.type) == (made.id, kind)
    assert instance.url == made.url
    instance.wait(["running"], timeout=60)
    assert instance.state == "running", instance.data
    assert instance.ipv4_address
    assert made.current_instance() == instance
    assert made.instances() == [instance]
    assert instance.servable() == made

    # Through the proxy with the client's key (the path form), until the server answers.
    answer = made.get("/")
    for _ in range(60):
        if answer.status_code == 200:
            break
        time.sleep(0.5)
        answer = made.get("/")
    assert (answer.status_code, answer.text) == (200, f"{kind} {name}")

    made.delete()
    with pytest.raises(errors.NotFound) as gone:
        cls.from_id(made.id)
    assert gone.value.status == 404
    with pytest.raises(errors.NotFound):
        instance.refresh()


def test_an_app_without_access_control_and_a_servable_named_for_its_prototype(
    prototypes: Dict[str, Prototype], cleanup: List[Servable]
) -> None:
    made = App.create(
        prototypes["sdk-app"], access_control=False, resources={"cpu_cores": 0.5, "ram": 64}
    )
    cleanup.append(made)
    assert made.access_control is False
    assert made.name == "sdk-app"  # the prototype's name, when none is given
    by_id = App.create(prototypes["sdk-app"].id, resources=SMALL)
    cleanup.append(by_id)
    assert (by_id.name, by_id.prototype.id) == ("sdk-app", prototypes["sdk-app"].id)
    assert made.resources == Resources(cpu_cores=0.5, ram=64)
    assert made.refresh().access_control is False


def test_a_daemon_runs_stops_restarts_and_logs_with_its_volume(
    prototypes: Dict[str, Prototype], cleanup: List[Servable], name: str
) -> None:
    daemon = Daemon.create(prototypes["sdk-daemon"], name=name, resources=SMALL)
    cleanup.append(daemon)
    assert daemon.volume is not None and daemon.volume["location"] == "/data"
    assert not hasattr(daemon, "url")
    first = daemon.run()
    first.wait(["running"], timeout=60)
    assert first.state == "running" and first.ipv4_address and first.is_active
    assert first.url is None
    # One active instance at a time.
    with pytest.raises(errors.Conflict) as e:
        daemon.run()
    assert (e.value.status, e.value.code) == (409, "conflict")
    with pytest.raises(errors.Timeout) as slow:
        first.wait(timeout=0.5, interval=0.1)
    assert slow.value.code == "timeout"

    stopped = first.stop()
    assert stopped is first and first.state == "stopped" and not first.is_active
    again = first.restart()
    assert again.servable_id == daemon.id
    again.wait(["running"], timeout=60)
    assert again.state == "running"
    lines = again.logs()
    for _ in range(40):
        if any("starts" in line.text for line in lines):
            break
        time.sleep(0.25)
        lines = again.logs()
    assert any(f"servable {name} (daemon) starts" in line.text for line in lines), lines
    assert all(line.id > 0 for line in lines)
    assert again.logs(after=lines[-1].id) == []
    assert daemon.current_instance() == again
    again.delete()
    with pytest.raises(errors.NotFound):
        Instance.from_id(again.id)


def test_a_pipeline_runs_once_and_ends_with_its_exit_code(
    prototypes: Dict[str, Prototype], cleanup: List[Servable], name: str
) -> None:
    ok = Pipeline.create(prototypes["sdk-pipeline"], name=name, config={"exit": 0}, resources=SMALL)
    cleanup.append(ok)
    done = ok.run().wait(timeout=120)
    assert (done.state, done.exit_code) == ("exited", 0), done.data
    assert done.finished is not None and done.outputs == []
    texts = [line.text for line in done.logs()]
    assert "pipeline done" in texts and any('"exit":0' in t for t in texts), texts

    failing = Pipeline.create(
        prototypes["sdk-pipeline"], name=name + "-f", config={"exit": 3}, resources=SMALL
    )
    cleanup.append(failing)
    ended = failing.run().wait(timeout=120)
    assert (ended.state, ended.exit_code) == ("failed", 3), ended.data


def test_outputs_are_read_from_the_instance() -> None:
    data = {
        "id": "0" * 32,
        "servable": "1" * 32,
        "type": "pipeline",
        "state": "exited",
        "outputs": [{"id": "2" * 32, "kind": "servable", "name": "x"}, {"kind": "no id"}],
    }
    instance = Instance(data, client=None)  # type: ignore[arg-type]
    assert instance.outputs == [Output(id="2" * 32, kind="servable", name="x")]
    assert not instance.is_active


def test_refused_input_comes_with_the_problems(
    prototypes: Dict[str, Prototype], cleanup: List[Servable], name: str
) -> None:
    # Not an id where the prototype's config-capabilities want one: a conflict with the
    # prototype, the problem in the details.
    with pytest.raises(errors.Conflict) as e:
        App.create(
            prototypes["sdk-asker"], name=name, config={"target": "not an id"}, resources=SMALL
        )
    assert (e.value.status, e.value.code) == (409, "conflict")
    assert any(d.get("field") == "config.target" for d in e.value.details), e.value.details
    assert "config.target" in str(e.value)
    with pytest.raises(errors.BadRequest) as bad:
        App.create(prototypes["sdk-app"], name=name, resources=Resources(ram=3))
    assert bad.value.status == 400 and bad.value.code in ("bad_request", "invalid")
    assert "ram" in str(bad.value)
    # A prototype of another type than the class's.
    with pytest.raises(errors.DtaasError) as wrong:
        Daemon.create(prototypes["sdk-app"], name=name, resources=SMALL)
    assert wrong.value.status in (400, 409) and "type" in str(wrong.value)
    assert [s for s in Servable.list() if s.name == name] == []
