"""A relying party built on Authlib (Debian's python3-authlib), run by tests/integration/oidc.rs.

It signs a user in to an app through the appliance's OpenID Connect provider the way an app
using the library would: discovery, an authorization URL with PKCE (S256) and a nonce, the
user's browser (a requests session signed in with the user's password, which allows the
consent page), the code exchanged with client_secret_basic, the ID token validated as a code
flow ID token against the JWKS, userinfo with the access token, the refresh token rotated
(client_secret_post), and its reuse refused. It prints what it saw as one JSON object.

Arguments: ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI LOGIN PASSWORD. The appliance listens on
plain HTTP on loopback in the tests, which AUTHLIB_INSECURE_TRANSPORT allows.
"""

import html
import json
import re
import secrets
import sys

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

issuer, client_id, client_secret, redirect_uri, login, password = sys.argv[1:7]

disco = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
jwks = JsonWebKey.import_key_set(requests.get(disco["jwks_uri"], timeout=10).json())

rp = OAuth2Session(
    client_id,
    client_secret,
    scope="openid profile email",
    redirect_uri=redirect_uri,
    code_challenge_method="S256",
    token_endpoint_auth_method="client_secret_basic",
)
verifier = secrets.token_urlsafe(48)
nonce = secrets.token_urlsafe(16)
url, state = rp.create_authorization_url(
    disco["authorization_endpoint"], code_verifier=verifier, nonce=nonce
)

# The user's browser: signed in, it is shown the consent page and allows.
browser = requests.Session()
signed_in = browser.post(
    f"{issuer}/login", data={"login": login, "password": password}, timeout=10
)
assert signed_in.status_code == 200, signed_in.status_code
page = browser.get(url, allow_redirects=False, timeout=10)
assert page.status_code == 200, (page.status_code, page.headers.get("location"))
fields = {
    name: html.unescape(value)
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)
}
fields["decision"] = "allow"
answer = browser.post(
    disco["authorization_endpoint"], data=fields, allow_redirects=False, timeout=10
)
assert answer.status_code == 303, answer.status_code
callback = answer.headers["location"]

# The app's side: the code for tokens (Authlib checks the state), the ID token validated.
token = rp.fetch_token(
    disco["token_endpoint"], authorization_response=callback, code_verifier=verifier
)
claims = jwt.decode(
    token["id_token"],
    jwks,
    claims_cls=CodeIDToken,
    claims_options={"iss": {"essential": True, "value": disco["issuer"]}},
    claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
)
claims.validate()
userinfo = rp.get(disco["userinfo_endpoint"], timeout=10).json()

# Refresh, with client_secret_post this time: a new refresh token that works; the old one
# used again is refused, and that revokes the whole family (the new one too).
first_refresh = token["refresh_token"]
poster = OAuth2Session(
    client_id, client_secret, token_endpoint_auth_method="client_secret_post", token=token
)
refreshed = poster.refresh_token(disco["token_endpoint"], refresh_token=first_refresh)
refreshed_userinfo = requests.get(
    disco["userinfo_endpoint"],
    headers={"Authorization": f"Bearer {refreshed['access_token']}"},
    timeout=10,
).status_code


def refresh_error(refresh_token):
    try:
        poster.refresh_token(disco["token_endpoint"], refresh_token=refresh_token)
        return "accepted"
    except AuthlibBaseError as e:
        return e.error


old_again = refresh_error(first_refresh)
new_after_reuse = refresh_error(refreshed["refresh_token"])

print(
    json.dumps(
        {
            "claims": dict(claims),
            "userinfo": userinfo,
            "refresh_rotated": refreshed["refresh_token"] != first_refresh,
            "refreshed_userinfo": refreshed_userinfo,
            "old_refresh_token": old_again,
            "new_refresh_token_after_reuse": new_after_reuse,
        }
    )
)
