"""An app that signs its users in through the appliance's OpenID Connect provider (the code
flow with PKCE) and greets them by login.

The browser is sent to the issuer (`DTAAS_OIDC_ISSUER`); the code is exchanged and the user's
claims read over the appliance's address as containers see it (`DTAAS_URL`), authenticated with
the client secret mounted at `DTAAS_OIDC_CLIENT_SECRET_FILE`. The app answers at its path form
(`<issuer>/apps/<id>/`), which is one of its allowed redirect URIs.
"""

import base64
import hashlib
import html
import os
import secrets
import threading
import time
from urllib.parse import urlencode

import requests
from flask import Flask, redirect, request

ISSUER = os.environ["DTAAS_OIDC_ISSUER"]
BACK = os.environ["DTAAS_URL"]
CLIENT_ID = os.environ["DTAAS_OIDC_CLIENT_ID"]
SECRET_FILE = os.environ["DTAAS_OIDC_CLIENT_SECRET_FILE"]
REDIRECT_URI = f"{ISSUER}/apps/{CLIENT_ID}/callback"

app = Flask(__name__)
# state -> (PKCE verifier, when), for sign-ins under way (ten minutes at most).
pending = {}
lock = threading.Lock()


@app.route("/")
def start():
    state = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        .rstrip(b"=")
        .decode()
    )
    with lock:
        now = time.time()
        for old in [s for s, (_, t) in pending.items() if now - t > 600]:
            del pending[old]
        pending[state] = (verifier, now)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid profile email",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return redirect(f"{ISSUER}/oidc/authorize?{query}")


@app.route("/callback")
def callback():
    with lock:
        entry = pending.pop(request.args.get("state", ""), None)
    if entry is None or "code" not in request.args:
        return "Sign-in failed: " + html.escape(request.args.get("error", "unknown state")), 400
    with open(SECRET_FILE) as f:
        secret = f.read().strip()
    tokens = requests.post(
        f"{BACK}/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": request.args["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": entry[0],
        },
        auth=(CLIENT_ID, secret),
        timeout=10,
    )
    if tokens.status_code != 200:
        return "Sign-in failed at the token endpoint", 502
    claims = requests.get(
        f"{BACK}/oidc/userinfo",
        headers={"Authorization": f"Bearer {tokens.json()['access_token']}"},
        timeout=10,
    )
    if claims.status_code != 200:
        return "Sign-in failed at the userinfo endpoint", 502
    login = claims.json()["preferred_username"]
    return f"Hello, {html.escape(login)}!"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8080)
