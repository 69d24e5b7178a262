"""The ``dtaas`` CLI's profile file, read (never written) by the SDK.

``dtaas login`` keeps, per profile, the appliance's URL, the login, an API key made for this
machine and how to check the server's certificate, in ``$XDG_CONFIG_HOME/dtaas/config.toml``
(when ``XDG_CONFIG_HOME`` is an absolute path) else ``~/.config/dtaas/config.toml``::

    current = "default"

    [profiles.default]
    url = "http://127.0.0.1:5000"
    login = "alice"
    api_key = "dtaas_..."
    api_key_id = "0190..."
    ca_cert = "/etc/dtaas/ca.crt"
    insecure = false

Python 3.11 reads it with :mod:`tomllib`; on 3.9 and 3.10 a reader of exactly what the CLI
writes (tables, quoted or bare keys, strings and booleans) does.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib as _tomllib
else:
    _tomllib = None

DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Profile:
    """One profile of the file."""

    name: str
    url: str
    login: Optional[str] = None
    api_key: Optional[str] = None
    api_key_id: Optional[str] = None
    ca_cert: Optional[str] = None
    insecure: bool = False


def file_path(environ: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """Where the profile file is for this environment (``None`` without HOME)."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "dtaas" / "config.toml"
    home = env.get("HOME", "")
    if home:
        return Path(home) / ".config" / "dtaas" / "config.toml"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_url(text: str) -> str:
    """An appliance URL as the CLI writes it: ``scheme://host[:port][/prefix]``, lower-case
    host, no default port, no trailing slash. Without a scheme: https, except on a loopback
    host (http). Raises :class:`ConfigurationError` for what is not such a URL."""
    raw = text.strip()

    def bad(why: str) -> ConfigurationError:
        return ConfigurationError(
            f"{raw!r} is not an appliance URL ({why}); write it as https://HOST[:PORT]"
        )

    scheme: Optional[str]
    if "://" in raw:
        scheme, rest = raw.split("://", 1)
        scheme = scheme.lower()
    else:
        scheme, rest = None, raw
    cut = min(
        [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0], default=len(rest)
    )
    authority, path = rest[:cut], rest[cut:]
    if "?" in path or "#" in path:
        raise bad("no query or fragment")
    if "@" in authority:
        raise bad("no credentials in the URL")
    port: Optional[int] = None
    if authority.startswith("["):
        host, _, after = authority[1:].partition("]")
        if after:
            if not after.startswith(":") or not after[1:].isdigit():
                raise bad("a port is a number")
            port = int(after[1:])
    elif ":" in authority:
        host, _, port_text = authority.rpartition(":")
        if ":" in host or not port_text.isdigit():
            raise bad("a port is a number")
        port = int(port_text)
    else:
        host = authority
    if not host or any(c.isspace() or c == "%" for c in host):
        raise bad("no host")
    if port is not None and not 0 < port < 65536:
        raise bad("a port is a number")
    host = host.lower()
    if scheme is None:
        scheme = "http" if _is_loopback(host) else "https"
    if scheme not in ("http", "https"):
        raise bad("the scheme is http or https")
    if port == (443 if scheme == "https" else 80):
        port = None
    shown = f"[{host}]" if ":" in host else host
    if port is not None:
        shown += f":{port}"
    return f"{scheme}://{shown}{path.rstrip('/')}"


# --- a reader of the TOML the CLI writes, for Python before 3.11 ---------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _string(line: str, i: int, where: str) -> Tuple[str, int]:
    """A basic ("...") or literal ('...') string starting at ``line[i]``; returns it and the
    index after it."""
    quote = line[i]
    out: List[str] = []
    i += 1
    while i < len(line):
        c = line[i]
        if c == quote:
            return "".join(out), i + 1
        if quote == '"' and c == "\\":
            e = line[i + 1 : i + 2]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
                continue
            if e in ("u", "U"):
                n = 4 if e == "u" else 8
                digits = line[i + 2 : i + 2 + n]
                if len(digits) != n or not all(d in "0123456789abcdefABCDEF" for d in digits):
                    raise ConfigurationError(f"{where}: a bad \\{e} escape")
                out.append(chr(int(digits, 16)))
                i += 2 + n
                continue
            raise ConfigurationError(f"{where}: a bad escape")
        out.append(c)
        i += 1
    raise ConfigurationError(f"{where}: a string without its end")


def _key_path(text: str, where: str) -> List[str]:
    """``a.b."c d"`` as its parts."""
    parts: List[str] = []
    i = 0
    while True:
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] in "\"'":
            part, i = _string(text, i, where)
        else:
            m = _BARE_KEY.match(text, i)
            if not m:
                raise ConfigurationError(f"{where}: a key is expected")
            part, i = m.group(0), m.end()
        parts.append(part)
        while i < len(text) and text[i] in " \t":
            i += 1
        if i == len(text):
            return parts
        if text[i] != ".":
            raise ConfigurationError(f"{where}: unexpected {text[i]!r}")
        i += 1


def _strip_comment(rest: str, where: str) -> None:
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise ConfigurationError(f"{where}: unexpected {rest!r}")


def parse_toml(text: str, source: str = "the profile file") -> Dict[str, Any]:
    """Reads TOML: with :mod:`tomllib` where Python has it, else :func:`parse_toml_subset`."""
    if _tomllib is None:
        return parse_toml_subset(text, source)
    try:
        return dict(_tomllib.loads(text))
    except _tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"{source} cannot be read: {e}; fix or remove it") from None


def parse_toml_subset(text: str, source: str = "the profile file") -> Dict[str, Any]:
    """Reads the subset of TOML the CLI writes: ``[table.keys]`` headers and ``key = value``
    lines whose value is a string, a boolean or an integer (for Python before 3.11)."""
    root: Dict[str, Any] = {}
    table = root
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{source}, line {number}"
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if line.startswith("[["):
                raise ConfigurationError(f"{where}: arrays of tables are not used here")
            end = line.rfind("]")
            if end < 0:
                raise ConfigurationError(f"{where}: a table header without its ]")
            _strip_comment(line[end + 1 :], where)
            table = root
            for part in _key_path(line[1:end], where):
                child = table.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ConfigurationError(f"{where}: {part} is not a table")
                table = child
            continue
        # key = value: the key ends at the first '=' outside quotes.
        i, quote = 0, ""
        while i < len(line):
            c = line[i]
            if quote:
                if c == "\\" and quote == '"':
                    i += 1
                elif c == quote:
                    quote = ""
            elif c in "\"'":
                quote = c
            elif c == "=":
                break
            i += 1
        if i == len(line):
            raise ConfigurationError(f"{where}: key = value is expected")
        keys = _key_path(line[:i], where)
        value_text = line[i + 1 :].strip()
        value: Any
        if value_text[:1] in ('"', "'"):
            if value_text.startswith('"""') or value_text.startswith("'''"):
                raise ConfigurationError(f"{where}: multi-line strings are not used here")
            value, end = _string(value_text, 0, where)
            _strip_comment(value_text[end:], where)
        else:
            token = value_text.split("#", 1)[0].strip()
            if token in ("true", "false"):
                value = token == "true"
            elif re.fullmatch(r"[+-]?[0-9]+", token):
                value = int(token)
            else:
                raise ConfigurationError(f"{where}: a string, boolean or integer is expected")
        target = table
        for part in keys[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigurationError(f"{where}: {part} is not a table")
        target[keys[-1]] = value
    return root


def load(path: Path) -> Tuple[Optional[str], Dict[str, Profile]]:
    """The file's current profile name and its profiles; an absent file has none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, {}
    except OSError as e:
        raise ConfigurationError(f"cannot read the profile file {path}: {e.strerror}") from None
    data = parse_toml(text, f"the profile file {path}")
    current = data.get("current")
    profiles: Dict[str, Profile] = {}
    table = data.get("profiles", {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"the profile file {path}: profiles is not a table")
    for name, entry in table.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ConfigurationError(f"the profile file {path}: profile {name} has no url")

        def text_of(key: str) -> Optional[str]:
            v = entry.get(key)
            return v if isinstance(v, str) else None

        profiles[name] = Profile(
            name=name,
            url=entry["url"],
            login=text_of("login"),
            api_key=text_of("api_key"),
            api_key_id=text_of("api_key_id"),
            ca_cert=text_of("ca_cert"),
            insecure=entry.get("insecure") is True,
        )
    return (current if isinstance(current, str) else None), profiles


def selected(environ: Optional[Mapping[str, str]] = None) -> Optional[Profile]:
    """The profile in use: ``DTAAS_PROFILE``, else the file's ``current``, else ``default``;
    ``None`` when the file has no such profile."""
    env = os.environ if environ is None else environ
    path = file_path(env)
    if path is None:
        return None
    current, profiles = load(path)
    name = env.get("DTAAS_PROFILE", "").strip() or current or DEFAULT_PROFILE
    return profiles.get(name)
