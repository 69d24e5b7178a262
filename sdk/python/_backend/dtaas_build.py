"""A PEP 517 build backend for the dtaas SDK, on the standard library alone.

It packs ``dtaas/*.py`` into a pure-Python wheel (and the source tree into an sdist) with the
metadata of ``pyproject.toml``'s ``[project]`` table, so that ``pip install ./sdk/python``
works offline: pip has nothing to fetch to build it. ``build_editable`` (PEP 660) makes a wheel
that puts this directory on ``sys.path`` through a ``.pth`` file.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "dtaas"
TAG = "py3-none-any"
# A fixed time for the files of the archives (zip cannot go before 1980): same input, same bytes.
EPOCH = (1980, 1, 1, 0, 0, 0)


def _read_project() -> Dict[str, Any]:
    """``[project]`` of pyproject.toml: with tomllib where Python has it, else by a reader of
    the flat ``key = "string"`` and ``key = ["a", "b"]`` lines it holds."""
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    try:
        import tomllib

        return dict(tomllib.loads(text)["project"])
    except ImportError:
        pass
    project: Dict[str, Any] = {}
    table = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[([A-Za-z0-9_.-]+)\]", line)
        if header:
            table = header.group(1)
            continue
        if table != "project":
            continue
        m = re.fullmatch(r"([A-Za-z0-9_-]+)\s*=\s*(.+)", line)
        if not m:
            raise ValueError(f"pyproject.toml: cannot read {line!r}")
        key, value = m.group(1), m.group(2).strip()
        if value.startswith("["):
            project[key] = re.findall(r'"((?:[^"\\]|\\.)*)"', value)
        elif value.startswith('"') and value.endswith('"'):
            project[key] = value[1:-1]
        else:
            raise ValueError(f"pyproject.toml: cannot read {line!r}")
    return project


def _metadata() -> str:
    """The core metadata (METADATA / PKG-INFO), version 2.1."""
    p = _read_project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
        f"Summary: {p.get('description', '')}",
    ]
    if "license" in p and isinstance(p["license"], str):
        lines.append(f"License: {p['license']}")
    if "requires-python" in p:
        lines.append(f"Requires-Python: {p['requires-python']}")
    for dep in p.get("dependencies", []):
        lines.append(f"Requires-Dist: {dep}")
    readme: Optional[str] = p.get("readme")
    body = ""
    if readme:
        with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
            body = f.read()
        lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + body


def _name_version() -> Tuple[str, str]:
    p = _read_project()
    return re.sub(r"[-_.]+", "_", p["name"]).lower(), p["version"]


def _package_files() -> List[str]:
    """The package's modules, relative to ROOT, in order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, PACKAGE)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py") or name == "py.typed":
                found.append(os.path.relpath(os.path.join(dirpath, name), ROOT))
    return found


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _write_wheel(directory: str, files: List[Tuple[str, bytes]]) -> str:
    name, version = _name_version()
    dist_info = f"{name}-{version}.dist-info"
    wheel_name = f"{name}-{version}-{TAG}.whl"
    entries = list(files)
    entries.append((f"{dist_info}/METADATA", _metadata().encode("utf-8")))
    entries.append(
        (
            f"{dist_info}/WHEEL",
            f"Wheel-Version: 1.0\nGenerator: dtaas_build\nRoot-Is-Purelib: true\nTag: {TAG}\n".encode(),
        )
    )
    record = [_record_line(path, data) for path, data in entries]
    record.append(f"{dist_info}/RECORD,,")
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    target = os.path.join(directory, wheel_name)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for path, data in entries:
            info = zipfile.ZipInfo(path, date_time=EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return wheel_name


def _read(path: str) -> bytes:
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


# --- PEP 517 ----------------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    """Nothing: the standard library builds it."""
    return []


def get_requires_for_build_sdist(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    """Nothing: the standard library builds it."""
    return []


def get_requires_for_build_editable(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    """Nothing: the standard library builds it."""
    return []


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: Optional[Dict[str, Any]] = None
) -> str:
    """Writes the ``.dist-info`` directory pip reads before building."""
    name, version = _name_version()
    dist_info = f"{name}-{version}.dist-info"
    os.makedirs(os.path.join(metadata_directory, dist_info), exist_ok=True)
    with open(os.path.join(metadata_directory, dist_info, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    return dist_info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[Dict[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    """The wheel of the package."""
    files = [(path.replace(os.sep, "/"), _read(path)) for path in _package_files()]
    return _write_wheel(wheel_directory, files)


def build_editable(
    wheel_directory: str,
    config_settings: Optional[Dict[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    """A wheel whose ``.pth`` file puts this source directory on ``sys.path``."""
    return _write_wheel(wheel_directory, [("dtaas_editable.pth", (ROOT + "\n").encode())])


def build_sdist(sdist_directory: str, config_settings: Optional[Dict[str, Any]] = None) -> str:
    """The source archive: pyproject.toml, README.md, the backend and the package."""
    name, version = _name_version()
    base = f"{name}-{version}"
    paths = [
        "pyproject.toml",
        "README.md",
        os.path.join("_backend", "dtaas_build.py"),
    ] + _package_files()
    target = os.path.join(sdist_directory, f"{base}.tar.gz")
    with tarfile.open(target, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        members = [(p.replace(os.sep, "/"), _read(p)) for p in paths]
        members.append(("PKG-INFO", _metadata().encode("utf-8")))
        for path, data in members:
            info = tarfile.TarInfo(f"{base}/{path}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 315532800
            tar.addfile(info, io.BytesIO(data))
    return os.path.basename(target)
