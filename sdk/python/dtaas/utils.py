"""What code inside a servable needs most: its config and its API key.

Inside a servable the appliance mounts the servable's config as a JSON file
(``DTAAS_CONFIG_FILE``, ``/run/dtaas/config.json``) and its API key (``DTAAS_API_KEY_FILE``,
``/run/secrets/dtaas/api-key``), and sets ``DTAAS_API_URL``, ``DTAAS_SERVABLE_ID``,
``DTAAS_INSTANCE_ID`` and friends; so the SDK works there without any login.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

from .client import Client, resolve
from .errors import ConfigurationError


def current_config(*, client: Optional[Client] = None) -> Dict[str, Any]:
    """The config of the servable this code runs in: the ``config`` given to ``X.create``.

    Read from the mounted file (``DTAAS_CONFIG_FILE``); without one, from ``GET /v1/me`` when
    the credentials are a servable's.

    Raises:
        ConfigurationError: not inside a servable (the credentials are a user's).
    """
    path = os.environ.get("DTAAS_CONFIG_FILE", "").strip()
    if path and client is None:
        try:
            with open(path, encoding="utf-8") as f:
                config = json.load(f)
        except OSError as e:
            raise ConfigurationError(
                f"cannot read the servable's config {path}: {e.strerror}"
            ) from None
        except ValueError as e:
            raise ConfigurationError(f"the servable's config {path} is not JSON: {e}") from None
        if not isinstance(config, dict):
            raise ConfigurationError(f"the servable's config {path} is not a JSON object")
        return config
    me = resolve(client).me()
    if me.get("kind") != "servable":
        raise ConfigurationError(
            "current_config() is for code inside a servable: DTAAS_CONFIG_FILE is not set and "
            "the credentials in use are a user's"
        )
    config = me.get("config")
    return config if isinstance(config, dict) else {}


def access_token(*, client: Optional[Client] = None) -> str:
    """The API key calls are made with (inside a servable: its mounted key), e.g. to call
    the API from other code: ``Authorization: Bearer <access_token()>``."""
    return resolve(client).api_key


def api_url(*, client: Optional[Client] = None) -> str:
    """The JSON API's address as this code reaches it (``.../v1``)."""
    return resolve(client).api_url


def whoami(*, client: Optional[Client] = None) -> Dict[str, Any]:
    """Who the credentials belong to (``GET /v1/me``): a user or a servable."""
    return resolve(client).me()


__all__ = ["access_token", "api_url", "current_config", "whoami"]
