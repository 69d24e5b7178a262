"""Where the SDK finds its credentials: the exported variables, the CLI's profile file,
dtaas.login(), and, inside a servable, what the appliance mounts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

import dtaas
from conftest import SMALL
from dtaas import errors, profile
from dtaas.client import Client, client_from_environment, default_client, set_default_client
from dtaas.pipeline import Pipeline
from dtaas.prototype import Prototype
from dtaas.servable import Servable
from dtaas.utils import access_token, api_url, current_config, whoami


def _cli_login(home: Path, url: str, login: str, profile_name: str = "") -> None:
    """``dtaas [--profile P] login URL -u LOGIN --password-stdin``, the real CLI, in ``home``."""
    args = [os.environ["DTAAS_TEST_CLI"]]
    if profile_name:
        args += ["--profile", profile_name]
    args += ["login", url, "-u", login, "--password-stdin"]
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    ran = subprocess.run(
        args,
        input=os.environ["DTAAS_TEST_PASSWORD"] + "\n",
        env=env,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_exported_variables_are_used_when_nothing_else_is_said() -> None:
    client = default_client()
    assert client.url == profile.normalize_url(os.environ["DTAAS_URL"])
    assert whoami()["login"] == os.environ["DTAAS_TEST_LOGIN"]
    assert access_token() == os.environ["DTAAS_API_KEY"]
    assert api_url() == client.url + "/v1"
    # Kept while the environment says the same.
    assert default_client() is client


def test_a_key_with_only_the_api_url(url: str) -> None:
    env = {"DTAAS_API_KEY": os.environ["DTAAS_API_KEY"], "DTAAS_API_URL": url + "/v1/"}
    client = client_from_environment(env)
    assert client.url == profile.normalize_url(url)
    assert client.me()["kind"] == "user"


def test_the_profile_file_written_by_the_cli(tmp_path: Path, url: str) -> None:
    alice = os.environ["DTAAS_TEST_LOGIN"]
    bob = os.environ["DTAAS_TEST_OTHER_LOGIN"]
    _cli_login(tmp_path, url, alice)
    _cli_login(tmp_path, url, bob, "second")  # now the current profile
    path = tmp_path / ".config" / "dtaas" / "config.toml"
    assert profile.file_path({"HOME": str(tmp_path)}) == path
    home = {"HOME": str(tmp_path)}

    assert client_from_environment(home).me()["login"] == bob
    assert client_from_environment({**home, "DTAAS_PROFILE": "default"}).me()["login"] == alice
    # XDG_CONFIG_HOME wins when absolute, and is ignored when relative.
    xdg = {"XDG_CONFIG_HOME": str(tmp_path / ".config"), "HOME": "/nonexistent"}
    assert client_from_environment(xdg).me()["login"] == bob
    with pytest.raises(errors.ConfigurationError):
        client_from_environment({"XDG_CONFIG_HOME": "relative", "HOME": "/nonexistent"})

    # The profile's key goes to the profile's own server only, however its URL is written.
    same = {**home, "DTAAS_URL": url.upper().replace("HTTP://", "http://") + "/"}
    assert client_from_environment(same).me()["login"] == bob
    with pytest.raises(errors.ConfigurationError) as e:
        client_from_environment({**home, "DTAAS_URL": "http://127.0.0.2:9"})
    assert "no API key" in e.value.message
    # An exported key wins over the profile's.
    other = {**home, "DTAAS_API_KEY": os.environ["DTAAS_API_KEY"]}
    assert client_from_environment(other).me()["login"] == alice

    # The reader for Python before 3.11 reads the CLI's file as tomllib does.
    text = path.read_text()
    assert profile.parse_toml_subset(text) == profile.parse_toml(text)
    current, profiles = profile.load(path)
    assert current == "second" and set(profiles) == {"default", "second"}
    assert profiles["default"].login == alice and profiles["default"].api_key
    assert profiles["second"].api_key_id


def test_the_subset_reader_takes_what_toml_allows_of_the_clis_shapes() -> None:
    text = (
        '# comment\ncurrent = "lab.2"  # trailing\n\n[profiles."lab.2"]\n'
        "url = \"https://h:5000\"\napi_key = 'dtaas_\\x'\ninsecure = true\n"
        'login = "a\\"b\\u00e9"\n[profiles.plain]\nurl = "http://127.0.0.1:5000"\nn = 3\n'
    )
    parsed = profile.parse_toml_subset(text)
    assert parsed == profile.parse_toml(text)
    assert parsed["profiles"]["lab.2"]["login"] == 'a"bé'
    for bad in ['url = "open', "[profiles", "x = [1]", 'a = """x"""', "= 3"]:
        with pytest.raises(errors.ConfigurationError):
            profile.parse_toml_subset(bad)


def test_urls_are_normalised_as_the_cli_does() -> None:
    cases = {
        "https://Dtaas.Example:5000/": "https://dtaas.example:5000",
        "dtaas.example": "https://dtaas.example",
        "127.0.0.1:5000": "http://127.0.0.1:5000",
        "localhost:5000": "http://localhost:5000",
        "https://h:443/dtaas/": "https://h/dtaas",
        "http://[::1]:5000": "http://[::1]:5000",
    }
    for given, want in cases.items():
        assert profile.normalize_url(given) == want
    for bad in [
        "ftp://h",
        "https://",
        "https://u:p@h",
        "https://h:port",
        "https://h/?x=1",
        "https://h:99999",
    ]:
        with pytest.raises(errors.ConfigurationError):
            profile.normalize_url(bad)


def test_tls_settings_follow_the_environment_and_the_home_profile(tmp_path: Path) -> None:
    base = {"DTAAS_URL": "https://dtaas.example:5000", "DTAAS_API_KEY": "dtaas_k"}
    assert client_from_environment(base).session.verify is True
    assert client_from_environment({**base, "DTAAS_INSECURE": "yes"}).session.verify is False
    assert client_from_environment({**base, "DTAAS_INSECURE": "0"}).session.verify is True
    assert client_from_environment({**base, "DTAAS_CA_CERT": "/ca.pem"}).session.verify == "/ca.pem"
    conf = tmp_path / "dtaas"
    conf.mkdir()
    (conf / "config.toml").write_text(
        'current = "p"\n[profiles.p]\nurl = "https://dtaas.example:5000"\napi_key = "dtaas_p"\n'
        'ca_cert = "/etc/dtaas/ca.crt"\n'
    )
    home = {"XDG_CONFIG_HOME": str(tmp_path)}
    client = client_from_environment(home)
    assert (client.session.verify, client.api_key) == ("/etc/dtaas/ca.crt", "dtaas_p")
    # Not for another server.
    elsewhere = client_from_environment(
        {**home, "DTAAS_URL": "https://other.example", "DTAAS_API_KEY": "k"}
    )
    assert elsewhere.session.verify is True


def test_nothing_configured_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigurationError) as e:
        client_from_environment({"HOME": str(tmp_path)})
    assert "DTAAS_URL" in e.value.message and "dtaas.login" in e.value.message
    with pytest.raises(errors.ConfigurationError):
        client_from_environment({})
    with pytest.raises(errors.ConfigurationError):
        client_from_environment({"DTAAS_API_KEY_FILE": "/run/secrets/dtaas/api-key"})


def test_the_mounted_key_file_is_read_on_every_request(
    tmp_path: Path, url: str, bob: Client
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text(os.environ["DTAAS_API_KEY"] + "\n")
    env = {
        "DTAAS_API_KEY_FILE": str(key_file),
        "DTAAS_API_URL": url + "/v1",
        "DTAAS_URL": "http://unused:1",
    }
    client = client_from_environment(env)
    assert client.key_file == str(key_file)
    assert client.me()["login"] == os.environ["DTAAS_TEST_LOGIN"]
    key_file.write_text(bob.api_key)  # a restart writes a new key
    assert client.me()["login"] == os.environ["DTAAS_TEST_OTHER_LOGIN"]
    key_file.write_text("")
    with pytest.raises(errors.ConfigurationError):
        client.me()
    key_file.unlink()
    with pytest.raises(errors.ConfigurationError):
        client.me()


def test_login_makes_a_key_and_logout_revokes_it(url: str) -> None:
    client = dtaas.login(
        url, os.environ["DTAAS_TEST_LOGIN"], os.environ["DTAAS_TEST_PASSWORD"], key_name="sdk test"
    )
    assert default_client() is client
    assert client.api_key.startswith("dtaas_") and client.api_key_id
    assert client.api_key != os.environ["DTAAS_API_KEY"]
    assert whoami()["login"] == os.environ["DTAAS_TEST_LOGIN"]
    key = client.api_key
    client.logout()
    with pytest.raises(errors.Unauthorized):
        Client(url, key).me()
    assert default_client() is not client  # back to the environment's
    assert whoami()["login"] == os.environ["DTAAS_TEST_LOGIN"]

    kept = dtaas.login(
        url, os.environ["DTAAS_TEST_LOGIN"], os.environ["DTAAS_TEST_PASSWORD"], make_default=False
    )
    try:
        assert default_client() is not kept and kept.me()["kind"] == "user"
        set_default_client(kept)
        assert default_client() is kept
    finally:
        kept.logout()


def test_a_wrong_password_is_unauthorized(url: str) -> None:
    with pytest.raises(errors.Unauthorized) as e:
        dtaas.login(url, os.environ["DTAAS_TEST_LOGIN"], "not the password")
    assert (e.value.status, e.value.code) == (401, "unauthorized")


def test_current_config_outside_a_servable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.ConfigurationError) as e:
        current_config()
    assert "inside a servable" in e.value.message
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"daemon-id": "abc", "n": 1}))
    monkeypatch.setenv("DTAAS_CONFIG_FILE", str(config))
    assert current_config() == {"daemon-id": "abc", "n": 1}
    config.write_text("[1]")
    with pytest.raises(errors.ConfigurationError):
        current_config()
    config.write_text("{not json")
    with pytest.raises(errors.ConfigurationError):
        current_config()


def _probe_report(instance_logs: List[str]) -> Dict[str, object]:
    for line in instance_logs:
        if line.startswith("PROBE "):
            return json.loads(line[len("PROBE ") :])
    raise AssertionError("no PROBE line in the log:\n" + "\n".join(instance_logs))


def test_inside_a_servable_the_sdk_uses_what_the_appliance_mounts(
    prototypes: Dict[str, Prototype], cleanup: List[Servable], name: str
) -> None:
    config = {"daemon-id": "0123456789abcdef0123456789abcdef", "nested": {"list": [1, "two"]}}
    probe = Pipeline.create(prototypes["sdk-probe"], name=name, config=config, resources=SMALL)
    cleanup.append(probe)
    instance = probe.run().wait(timeout=120)
    lines = [line.text for line in instance.logs()]
    assert (instance.state, instance.exit_code) == ("exited", 0), "\n".join(lines)
    report = _probe_report(lines)
    assert report["config"] == config
    assert report["key_file"] == "/run/secrets/dtaas/api-key"
    assert report["token_is_the_mounted_key"] is True and report["token_prefix"] == "dtaas_"
    assert str(report["api_url"]).endswith("/v1")
    assert report["me"] == {
        "kind": "servable",
        "id": probe.id,
        "name": name,
        "type": "pipeline",
        "instance": instance.id,
    }
    assert report["instance"] == {"id": instance.id, "state": "running", "servable": probe.id}
    # A servable's key cannot mint keys: the API's refusal, as the SDK's exception.
    assert report["mint"] == {"class": "Forbidden", "code": "forbidden", "status": 403}


def test_the_package_installs_offline_from_the_checkout(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parent.parent
    target = tmp_path / "site"
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    installed = sorted(p.name for p in (target / "dtaas").glob("*.py"))
    assert installed == sorted(p.name for p in (source / "dtaas").glob("*.py"))
    metadata = next(target.glob("dtaas-*.dist-info")) / "METADATA"
    text = metadata.read_text()
    assert "Requires-Dist: requests" in text and "Requires-Python: >=3.9" in text
    # Nothing was written into the checkout.
    assert not (source / "build").exists() and not list(source.glob("*.egg-info"))
