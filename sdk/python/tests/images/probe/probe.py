"""Runs inside a servable made by the SDK's tests: uses the SDK with nothing but what the
appliance mounts and sets, and prints what it found as one line, ``PROBE <json>``. The key
itself is never printed."""

import json
import os

from dtaas import errors
from dtaas.client import default_client
from dtaas.instance import Instance
from dtaas.utils import access_token, api_url, current_config, whoami

report = {}
client = default_client()
report["key_file"] = client.key_file
report["config"] = current_config()
token = access_token()
with open(os.environ["DTAAS_API_KEY_FILE"], encoding="utf-8") as f:
    report["token_is_the_mounted_key"] = token == f.read().strip()
report["token_prefix"] = token[:6]
report["api_url"] = api_url()
me = whoami()
report["me"] = {k: me.get(k) for k in ("kind", "id", "name", "type", "instance")}
own = Instance.from_id(os.environ["DTAAS_INSTANCE_ID"])
report["instance"] = {"id": own.id, "state": own.state, "servable": own.servable_id}
try:
    client.post("/api-keys", {"name": "minted inside"})
    report["mint"] = "allowed"
except errors.DtaasError as e:
    report["mint"] = {"class": type(e).__name__, "code": e.code, "status": e.status}
print("PROBE " + json.dumps(report), flush=True)
