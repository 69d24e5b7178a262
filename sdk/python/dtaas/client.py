"""The connection to the appliance's JSON API (``/v1``) and where its credentials come from.

Every call of the SDK goes through a :class:`Client`. Functions and class methods take an
optional ``client=``; without it they use :func:`default_client`, which finds the credentials
the first way that applies:

1. the client made by :func:`login` (or given to :func:`set_default_client`);
2. ``DTAAS_API_KEY`` with ``DTAAS_URL`` (what ``eval $(dtaas export)`` sets), the URL falling
   back to the CLI profile's;
3. inside a servable: the API key file the appliance mounts (``DTAAS_API_KEY_FILE``, read again
   on every request) and ``DTAAS_API_URL`` (or ``DTAAS_URL``);
4. the CLI's profile file (see :mod:`dtaas.profile`): ``DTAAS_PROFILE``, else the current one.
   A profile's key and certificate settings go only to the profile's own URL.

TLS like the CLI: ``DTAAS_CA_CERT`` (or the profile's ``ca_cert``) names an authority to trust,
``DTAAS_INSECURE=1`` (or the profile's ``insecure``) turns certificate checks off. Like the CLI,
the SDK ignores proxy variables and ``~/.netrc``: it talks to the appliance directly.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple, Union
from urllib.parse import quote

import requests
from requests.auth import AuthBase

from . import profile as profiles
from .errors import (
    ConfigurationError,
    ConnectionFailed,
    DtaasError,
    UnexpectedResponse,
    error_for,
)

#: Connect and read timeouts of a request, in seconds. Running a servable answers once its
#: container runs, and deleting one stops it first: reads may take a while.
DEFAULT_TIMEOUT: Tuple[float, float] = (10.0, 600.0)

#: Items asked for per page when a list is read whole.
PAGE_SIZE = 1000

_TRUTHY = ("1", "true", "yes", "on")


def segment(value: str) -> str:
    """``value`` quoted as one path segment."""
    return quote(str(value), safe="")


def id_of(thing: Union[str, Any]) -> str:
    """The id of an SDK object, or the string given."""
    if isinstance(thing, str):
        return thing
    ident = getattr(thing, "id", None)
    if not isinstance(ident, str):
        raise TypeError(f"an id or an object with an id is expected, not {type(thing).__name__}")
    return ident


def record_id(data: Any, what: str) -> str:
    """The id in an API object's JSON; :class:`UnexpectedResponse` naming ``what`` (e.g. "a
    trust") when the answer is no such object."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise UnexpectedResponse(f"{what} without an id")
    ident: str = data["id"]
    return ident


class _Bearer(AuthBase):
    """``Authorization: Bearer <key>``, the key asked for on every request."""

    def __init__(self, client: "Client") -> None:
        self._client = client

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._client.api_key}"
        return r


class Client:
    """One appliance and the API key to use with it.

    Args:
        url: The appliance's address, e.g. ``http://127.0.0.1:5000`` (without ``/v1``). Without
            a scheme: https, except on a loopback host.
        api_key: The API key (``dtaas_...``).
        key_file: A file holding the key instead, read on every request (a servable's key is
            replaced when it restarts).
        ca_cert: A PEM file of an authority to trust for the appliance's certificate.
        insecure: Do not check the appliance's certificate.
        timeout: Connect and read timeouts of each request, in seconds.
    """

    def __init__(
        self,
        url: str,
        api_key: Optional[str] = None,
        *,
        key_file: Optional[str] = None,
        ca_cert: Optional[str] = None,
        insecure: bool = False,
        timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = profiles.normalize_url(url)
        self._api_key = api_key.strip() if api_key else None
        self.key_file = key_file
        self.ca_cert = ca_cert
        self.insecure = insecure
        self.timeout = timeout
        #: The id of the key, when :func:`login` made it (to revoke it with :meth:`logout`).
        self.api_key_id: Optional[str] = None
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = False if insecure else (ca_cert or True)
        self.session.headers["User-Agent"] = "dtaas-python-sdk"

    def __repr__(self) -> str:
        source = f"key_file={self.key_file!r}" if self.key_file else "api_key=..."
        return f"Client({self.url!r}, {source})"

    @property
    def api_url(self) -> str:
        """The JSON API's base address (``<url>/v1``)."""
        return self.url + "/v1"

    @property
    def api_key(self) -> str:
        """The API key in use (read from ``key_file`` when there is one)."""
        if self.key_file:
            try:
                with open(self.key_file, encoding="utf-8") as f:
                    key = f.read().strip()
            except OSError as e:
                raise ConfigurationError(
                    f"cannot read the API key file {self.key_file}: {e.strerror}"
                ) from None
            if not key:
                raise ConfigurationError(f"the API key file {self.key_file} is empty")
            return key
        if not self._api_key:
            raise ConfigurationError(f"no API key for {self.url}")
        return self._api_key

    # --- requests ------------------------------------------------------------------------

    def send(
        self, method: str, url: str, *, authenticated: bool = True, **kwargs: Any
    ) -> requests.Response:
        """Sends a request to an absolute ``url`` with this client's settings and, when
        ``authenticated``, its key (only to an address under the client's ``url``); answers the
        response as it is, whatever its status. ``kwargs`` are those of
        :meth:`requests.Session.request`.

        Raises:
            ConnectionFailed: no answer (refused, timed out, TLS failed).
            ConfigurationError: the key would go to another server.
        """
        if authenticated and not (url == self.url or url.startswith(self.url + "/")):
            raise ConfigurationError(f"the API key of {self.url} is not sent to {url}")
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", False)
        try:
            return self.session.request(
                method, url, auth=_Bearer(self) if authenticated else None, **kwargs
            )
        except requests.exceptions.SSLError as e:
            raise ConnectionFailed(
                f"the TLS connection to {self.url} failed ({_reason(e)}): trust its authority "
                "with DTAAS_CA_CERT (or the profile's ca_cert), or set DTAAS_INSECURE=1"
            ) from None
        except requests.exceptions.Timeout:
            raise ConnectionFailed(
                f"{method} {url}: the appliance did not answer in time"
            ) from None
        except requests.exceptions.RequestException as e:
            raise ConnectionFailed(f"cannot reach {self.url}: {_reason(e)}") from None

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Optional[Mapping[str, Any]] = None,
    ) -> Any:
        """Calls ``<api_url><path>`` and answers its JSON body (``None`` for an empty one).

        Raises:
            DtaasError: the appliance's error (a subclass chosen by its code), or
                :class:`~dtaas.errors.UnexpectedResponse` for an answer that is not the API's.
        """
        response, _ = self._call(method, path, json=json, params=params)
        return response

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Optional[Mapping[str, Any]] = None,
    ) -> Tuple[Any, requests.Response]:
        url = self.api_url + path
        kwargs: Dict[str, Any] = {}
        if json is not None:
            kwargs["json"] = json
        if params:
            kwargs["params"] = {k: v for k, v in params.items() if v is not None}
        r = self.send(method, url, **kwargs)
        check(r, f"{method} /v1{path}")
        if r.status_code == 204 or not r.content:
            return None, r
        try:
            return r.json(), r
        except ValueError:
            raise UnexpectedResponse(
                f"{method} /v1{path} answered {r.status_code} without JSON: is {self.url} a "
                "dtaas appliance?",
                status=r.status_code,
            ) from None

    def get(self, path: str, params: Optional[Mapping[str, Any]] = None) -> Any:
        """``GET`` of an API path (``/servables``); its JSON."""
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Any:
        """``POST`` of a JSON body to an API path; the answer's JSON."""
        return self.request("POST", path, json=json)

    def delete(self, path: str, params: Optional[Mapping[str, Any]] = None) -> Any:
        """``DELETE`` of an API path; the answer's JSON, if any."""
        return self.request("DELETE", path, params=params)

    def pages(self, path: str, params: Optional[Mapping[str, Any]] = None) -> Iterator[Any]:
        """Every item of a list, following the ``X-Next-Cursor`` of each page."""
        query: Dict[str, Any] = dict(params or {})
        query.setdefault("limit", PAGE_SIZE)
        while True:
            items, r = self._call("GET", path, params=query)
            if not isinstance(items, list):
                raise UnexpectedResponse(
                    f"GET /v1{path} did not answer a list", status=r.status_code
                )
            yield from items
            cursor = r.headers.get("X-Next-Cursor")
            if not cursor:
                return
            query["cursor"] = cursor

    def me(self) -> Dict[str, Any]:
        """Who the key belongs to (``GET /v1/me``): a user (``kind`` ``user``, ``login`` ...)
        or a servable (``kind`` ``servable``, its ids and ``config``)."""
        me = self.get("/me")
        if not isinstance(me, dict):
            raise UnexpectedResponse("GET /v1/me did not answer an object")
        return me

    def logout(self) -> None:
        """Revokes the key :func:`login` made (nothing for a key given to the client), and stops
        using this client as the default one."""
        if self.api_key_id:
            self.delete(f"/api-keys/{segment(self.api_key_id)}")
            self.api_key_id = None
            self._api_key = None
        global _default
        with _lock:
            if _default is self:
                _default = None


def _reason(e: Exception) -> str:
    """A short reason from a requests exception (the innermost cause's text)."""
    inner: BaseException = e
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    text = str(inner) or type(inner).__name__
    return text[:300]


def check(r: requests.Response, what: str) -> None:
    """Raises the error a non-2xx answer stands for: the API's own (code, message, details)
    when the body is the ``/v1`` error body, else :class:`UnexpectedResponse` naming only the
    status (never another server's body)."""
    if 200 <= r.status_code < 300:
        return
    body: Any = None
    try:
        body = r.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if (
        isinstance(err, dict)
        and isinstance(err.get("code"), str)
        and isinstance(err.get("message"), str)
    ):
        details = err.get("details")
        if not (isinstance(details, list) and all(isinstance(d, dict) for d in details)):
            details = None
        raise error_for(r.status_code, err["code"], err["message"], details)
    raise UnexpectedResponse(
        f"{what} answered {r.status_code} {r.reason or ''}".rstrip()
        + ", not with an error of the dtaas API",
        status=r.status_code,
    )


# --- the default client ------------------------------------------------------------------

_lock = threading.Lock()
_default: Optional[Client] = None
_resolved: Optional[Tuple[Tuple[Any, ...], Client]] = None


def set_default_client(client: Optional[Client]) -> None:
    """Makes ``client`` the one calls use when none is given (``None``: find it again from the
    environment and the profile file)."""
    global _default
    with _lock:
        _default = client


def _truthy(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in _TRUTHY


def _base_of_api_url(text: str) -> str:
    """``DTAAS_API_URL`` (``.../v1``) as the appliance's address."""
    url = profiles.normalize_url(text)
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _settings(environ: Mapping[str, str]) -> Tuple[Any, ...]:
    """What the environment and the profile file say, as the arguments of a Client."""
    env = {k: v for k, v in environ.items() if v.strip()}
    key = env.get("DTAAS_API_KEY", "").strip() or None
    ca_cert = env.get("DTAAS_CA_CERT")
    insecure = _truthy(env.get("DTAAS_INSECURE"))
    key_file = env.get("DTAAS_API_KEY_FILE")
    url = profiles.normalize_url(env["DTAAS_URL"]) if "DTAAS_URL" in env else None

    if key is None and key_file:
        # Inside a servable: the mounted key, and the API as the container reaches it.
        if "DTAAS_API_URL" in env:
            url = _base_of_api_url(env["DTAAS_API_URL"])
        if url is None:
            raise ConfigurationError(
                "DTAAS_API_KEY_FILE is set but neither DTAAS_API_URL nor DTAAS_URL: "
                "where is the appliance?"
            )
        return (url, None, key_file, ca_cert, insecure)

    profile = profiles.selected(dict(env))
    if url is None and key is not None and "DTAAS_API_URL" in env:
        url = _base_of_api_url(env["DTAAS_API_URL"])
    if url is None and profile is not None:
        url = profiles.normalize_url(profile.url)
    if url is None:
        raise ConfigurationError(
            "no appliance to talk to: set DTAAS_URL and DTAAS_API_KEY (eval $(dtaas export)), "
            "log in with the CLI (dtaas login URL), or call dtaas.login(url, login, password)"
        )
    home = profile if profile is not None and profiles.normalize_url(profile.url) == url else None
    if key is None:
        key = home.api_key if home is not None else None
    if key is None:
        raise ConfigurationError(
            f"no API key for {url}: set DTAAS_API_KEY (eval $(dtaas export)), log in with the "
            "CLI (dtaas login), or call dtaas.login(url, login, password)"
        )
    if home is not None:
        ca_cert = ca_cert or home.ca_cert
        insecure = insecure or home.insecure
    return (url, key, None, ca_cert, insecure)


def client_from_environment(environ: Optional[Mapping[str, str]] = None) -> Client:
    """A new client from the environment and the profile file (steps 2 to 4 above)."""
    url, key, key_file, ca_cert, insecure = _settings(os.environ if environ is None else environ)
    return Client(url, key, key_file=key_file, ca_cert=ca_cert, insecure=insecure)


def default_client() -> Client:
    """The client calls use when none is given (see the module's documentation). The one
    found from the environment is kept while the environment and profile say the same."""
    global _resolved
    with _lock:
        if _default is not None:
            return _default
    settings = _settings(os.environ)
    with _lock:
        if _resolved is not None and _resolved[0] == settings:
            return _resolved[1]
        url, key, key_file, ca_cert, insecure = settings
        client = Client(url, key, key_file=key_file, ca_cert=ca_cert, insecure=insecure)
        _resolved = (settings, client)
        return client


def resolve(client: Optional[Client]) -> Client:
    """``client``, or the default one."""
    return client if client is not None else default_client()


def _key_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    host = socket.gethostname() or "this machine"
    name = f"dtaas SDK: {user}@{host}" if user else f"dtaas SDK on {host}"
    return name[:200]


def login(
    url: str,
    login: str,
    password: str,
    *,
    ca_cert: Optional[str] = None,
    insecure: bool = False,
    key_name: Optional[str] = None,
    expires_in_days: Optional[int] = None,
    make_default: bool = True,
) -> Client:
    """Signs in with a login and password and makes an API key for this program, as the CLI's
    ``dtaas login`` does: ``POST /login`` (a session), ``POST /v1/api-keys`` with it, then
    ``POST /logout``. The password is not kept. Nothing is written to the profile file.

    Args:
        url: The appliance's address (``http://127.0.0.1:5000``).
        login: The account's login name.
        password: Its password.
        ca_cert: A PEM file of an authority to trust for the appliance's certificate.
        insecure: Do not check the appliance's certificate.
        key_name: The key's name (default: ``dtaas SDK: user@host``).
        expires_in_days: Days until the key stops working (default: until revoked).
        make_default: Make the new client the default one of later calls.

    Returns:
        A client holding the new key (``client.logout()`` revokes it).

    Raises:
        Unauthorized: wrong login or password. Forbidden: the account is not confirmed, or is
        disabled. RateLimited: too many attempts.
    """
    client = Client(url, None, ca_cert=ca_cert, insecure=insecure)
    signed_in = client.send(
        "POST",
        client.url + "/login",
        authenticated=False,
        data={"login": login, "password": password},
    )
    if not 200 <= signed_in.status_code < 300:
        _raise_kabuto(signed_in, "signing in")
    session = next((c.value for c in signed_in.cookies if c.name == "dtaas_session"), None)
    if not session:
        raise UnexpectedResponse(
            f"{client.url} signed you in but gave no session: is it a dtaas appliance?",
            status=signed_in.status_code,
        )
    cookies = {"dtaas_session": session}
    body: Dict[str, Any] = {"name": key_name or _key_name()}
    if expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    try:
        created = client.send(
            "POST", client.api_url + "/api-keys", authenticated=False, json=body, cookies=cookies
        )
    finally:
        try:
            client.send("POST", client.url + "/logout", authenticated=False, cookies=cookies)
        except DtaasError:
            pass  # the session ends by itself; the key is what matters
        client.session.cookies.clear()
    check(created, "POST /v1/api-keys")
    try:
        made = created.json()
    except ValueError:
        made = None
    if not isinstance(made, dict) or not isinstance(made.get("key"), str):
        raise UnexpectedResponse(f"{client.url} made no API key: is it a dtaas appliance?")
    client._api_key = made["key"]
    client.api_key_id = made.get("id") if isinstance(made.get("id"), str) else None
    if make_default:
        set_default_client(client)
    return client


def _raise_kabuto(r: requests.Response, what: str) -> None:
    """The error of a kabuto-face answer (``{"error": "message"}``)."""
    message: Union[str, None] = None
    try:
        body = r.json()
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            message = body["error"]
    except ValueError:
        pass
    if message is None:
        raise UnexpectedResponse(
            f"{what} answered {r.status_code}, not with an error of the dtaas appliance",
            status=r.status_code,
        )
    code = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        409: "conflict",
        429: "rate_limited",
    }.get(r.status_code, "internal")
    raise error_for(r.status_code, code, message)


__all__ = [
    "Client",
    "DEFAULT_TIMEOUT",
    "check",
    "client_from_environment",
    "default_client",
    "login",
    "resolve",
    "segment",
    "set_default_client",
]
