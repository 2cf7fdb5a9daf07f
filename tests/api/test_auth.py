"""Signing in: the OAuth2 password flow, the map page's cookie, limits on failed sign-ins, the audit
of every attempt, expiry and sign-out, and tokens of an OIDC issuer checked with a local key set."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from api.app import create_app
from api.auth.settings import OidcSettings, SignInLimits
from beffroi.identity import AuditKind, Role
from beffroi.sqlite_store import SqliteStore
from tests.fixtures.api import TestClient, add_user, auth_settings_for_tests, with_auth
from tower.settings import Settings, load_settings, write_settings

PASSWORD = "correct horse battery staple"


@pytest.fixture
def identity(tmp_path) -> Iterator[SqliteStore]:
    """The store: it keeps the users and the audit log."""
    store = SqliteStore(tmp_path / "auth.db")
    store.migrate()
    yield store
    store.close()


def make_client(settings: Settings, demo_venue, identity: SqliteStore, tmp_path, **auth) -> TestClient:
    config = auth_settings_for_tests().model_copy(update=auth)
    app = create_app(with_auth(settings, config), store=identity, venue=demo_venue, live_alerts=False)
    return TestClient(app)


@pytest.fixture
def client(api_settings, demo_venue, identity, tmp_path):
    with make_client(api_settings, demo_venue, identity, tmp_path) as c:
        add_user(c.app, "olga", role=Role.OPERATOR, sites=("stade-demo",), password=PASSWORD)
        yield c


def sign_in(client, username="olga", password=PASSWORD, path="/auth/token"):
    return client.post(path, data={"username": username, "password": password})


def test_the_password_flow_gives_a_short_lived_bearer_token(client, identity):
    assert client.get("/sites").status_code == 401
    r = sign_in(client, username=" Olga ")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert 890 <= body["expires_in"] <= 900
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get("/auth/session", headers=headers).json()["name"] == "olga"
    assert [s["id"] for s in client.get("/sites", headers=headers).json()["sites"]] == ["stade-demo"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    assert "role" not in claims, "rights are read from the user, so that a change applies within recheck_s"
    [record] = identity.list_audit(kind=AuditKind.SIGN_IN)
    assert (record.actor, record.client, record.detail) == ("olga", "testclient", "bearer token")


def test_wrong_passwords_unknown_and_disabled_users_are_401_and_audited(client, identity):
    add_user(client.app, "dora", password=PASSWORD)
    identity.set_user_disabled("dora", True)
    for username, password in (
        ("olga", "wrong"),
        ("nobody", PASSWORD),
        ("dora", PASSWORD),
        ("Bad Name!", "x"),
    ):
        r = sign_in(client, username, password)
        assert r.status_code == 401, username
        assert r.json()["reason"] == "wrong user name or password, or a disabled user"
        assert r.headers["www-authenticate"] == "Bearer"
    failed = identity.list_audit(kind=AuditKind.SIGN_IN_FAILED)
    assert [(f.actor, f.detail) for f in reversed(failed)] == [
        ("olga", "wrong password"),
        ("nobody", "unknown user"),
        ("dora", "disabled user"),
        ("bad name!", "unknown user"),
    ]


def test_failed_sign_ins_are_limited_per_user_and_per_address(api_settings, demo_venue, identity, tmp_path):
    limits = SignInLimits(per_user=3, per_address=5, window_s=60)
    with make_client(api_settings, demo_venue, identity, tmp_path, sign_in_limits=limits) as client:
        add_user(client.app, "olga", password=PASSWORD)
        add_user(client.app, "omar", password=PASSWORD)
        for _ in range(3):
            assert sign_in(client, "olga", "wrong").status_code == 401
        r = sign_in(client, "olga", PASSWORD)  # even the right password waits now
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.json()["reason"].startswith("too many failed sign-ins: try again in ")
        assert sign_in(client, "omar", PASSWORD).status_code == 200, "another user is not held up"
        assert sign_in(client, "omar", "wrong").status_code == 401
        assert sign_in(client, "omar", "wrong").status_code == 401
        r = sign_in(client, "omar", PASSWORD)  # 5 failures from this address
        assert r.status_code == 429
        refused = identity.list_audit(kind=AuditKind.SIGN_IN_FAILED, actor="omar")
        assert refused[0].detail.startswith("refused: rate limited for ")


def test_the_session_cookie_is_httponly_strict_and_serves_the_api(client, identity):
    r = sign_in(client, path="/auth/session")
    assert r.status_code == 200
    session = r.json()
    assert (session["name"], session["role"], session["sites"]) == ("olga", "operator", ["stade-demo"])
    assert "access_token" not in session, "the page's script never sees the token"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("beffroi_session=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute in cookie
    assert 898 <= int(re.search(r"Max-Age=(\d+)", cookie).group(1)) <= 900
    assert client.get("/sites/stade-demo/alerts").status_code == 200, "the cookie signs requests in"
    assert client.get("/sites/fan-demo/alerts").status_code == 404
    r = client.post("/auth/session/refresh")
    assert r.status_code == 200
    r = client.post(
        "/sites/stade-demo/alerts/x/actions",
        json={"action": "acknowledge"},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert r.json()["reason"] == "cross-origin request from https://evil.example refused"
    assert client.delete("/auth/session").status_code == 204
    assert client.get("/sites").status_code == 401


def test_signed_out_expired_and_forged_tokens_are_401(client):
    token = sign_in(client).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/sites", headers=headers).status_code == 200
    assert client.delete("/auth/session", headers=headers).status_code == 204
    r = client.get("/sites", headers=headers)
    assert r.status_code == 401
    assert r.json()["reason"] == "this session has been signed out: sign in again"

    claims = jwt.decode(token, options={"verify_signature": False})
    key = client.app.state.auth_settings.secret_key.get_secret_value()
    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, key, algorithm="HS256")
    r = client.get("/sites", headers={"Authorization": f"Bearer {expired}"})
    assert (r.status_code, r.json()["reason"]) == (401, "the token has expired: sign in again")
    forged = jwt.encode(
        {**claims, "sub": "olga"}, "another key of thirty-two characters!!", algorithm="HS256"
    )
    r = client.get("/sites", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    assert r.json()["reason"].startswith("invalid token: Signature verification failed")
    none_alg = jwt.encode({**claims}, None, algorithm="none")
    assert client.get("/sites", headers={"Authorization": f"Bearer {none_alg}"}).status_code == 401
    assert client.get("/sites", headers={"Authorization": "Basic b2xnYTpw"}).status_code == 401


def test_a_disabled_user_is_out_within_recheck_s(api_settings, demo_venue, identity, tmp_path):
    with make_client(api_settings, demo_venue, identity, tmp_path, recheck_s=0) as client:
        add_user(client.app, "olga", password=PASSWORD)
        headers = {"Authorization": f"Bearer {sign_in(client).json()['access_token']}"}
        assert client.get("/sites", headers=headers).status_code == 200
        identity.set_user_disabled("olga", True)
        r = client.get("/sites", headers=headers)
        assert (r.status_code, r.json()["reason"]) == (401, "user 'olga' is unknown or disabled")


def test_no_secret_key_no_api():
    with pytest.raises(ValueError, match="BEFFROI_API__AUTH__SECRET_KEY"):
        create_app(Settings(), live_alerts=False)


def test_the_api_listens_on_localhost_unless_told_otherwise():
    assert Settings().api.host == "127.0.0.1"


# -- OIDC ------------------------------------------------------------------------------------------


@pytest.fixture
def issuer(tmp_path):
    """An OIDC issuer of the test's own: an RSA key, its JWKS file, and a token maker."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))

    def token(signing_key=key, kid="k1", **claims):
        now = int(datetime.now(UTC).timestamp())
        base = {"iss": "https://idp.example", "aud": "beffroi", "iat": now, "exp": now + 300, "sub": "u-1"}
        return jwt.encode({**base, **claims}, signing_key, algorithm="RS256", headers={"kid": kid})

    settings = OidcSettings(
        issuer="https://idp.example",
        audience="beffroi",
        jwks_file=jwks,
        role_map={"control-room": Role.OPERATOR, "sec-lead": Role.SUPERVISOR},
    )
    return settings, token


def test_tokens_of_the_oidc_issuer_map_claims_to_roles_and_sites(
    api_settings, demo_venue, identity, tmp_path, issuer
):
    oidc, token = issuer
    with make_client(api_settings, demo_venue, identity, tmp_path, oidc=oidc) as client:

        def get(path, tok):
            return client.get(path, headers={"Authorization": f"Bearer {tok}"})

        op = token(preferred_username="ines", roles=["staff", "control-room"], sites=["stade-demo"])
        session = get("/auth/session", op).json()
        assert (session["name"], session["role"], session["sites"], session["source"]) == (
            "ines",
            "operator",
            ["stade-demo"],
            "oidc",
        )
        assert get("/sites/stade-demo/alerts", op).status_code == 200
        assert get("/audit", op).status_code == 403
        lead = token(preferred_username="lea", roles=["control-room", "sec-lead"], sites="*")
        assert get("/audit", lead).status_code == 200
        assert get("/auth/session", token(roles=["viewer"], sites=["stade-demo"])).json()["name"] == "u-1"

        refused = {
            "no role": token(roles=["staff"], sites=["stade-demo"]),
            "no site": token(roles=["viewer"]),
            "wrong audience": token(roles=["viewer"], sites="*", aud="another-app"),
            "expired": token(roles=["viewer"], sites="*", exp=int(time.time()) - 10),
            "unknown key": token(kid="k2", roles=["viewer"], sites="*"),
            "another key": token(
                signing_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
                roles=["viewer"],
                sites="*",
            ),
            "another issuer": token(roles=["viewer"], sites="*", iss="https://elsewhere.example"),
        }
        for why, tok in refused.items():
            assert get("/sites", tok).status_code == 401, why
        assert get("/sites", refused["no role"]).json()["reason"] == (
            "the token's 'roles' claim grants no Beffroi role"
        )


def test_the_signing_key_is_never_written_to_a_settings_file(tmp_path):
    settings = with_auth(Settings())
    key = settings.api.auth.secret_key.get_secret_value()
    path = write_settings(settings, tmp_path / "settings.yaml")
    assert key not in path.read_text()
    assert "secret_key" not in path.read_text()
    assert load_settings(path).api.auth.secret_key is None, "children read it from the environment"


class _KeyServer:
    """A local HTTP server serving a JWKS document (no internet), counting its fetches."""

    def __init__(self, keys: list[dict[str, object]]) -> None:
        self.keys = keys
        self.fetches = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, object]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def test_oidc_keys_from_an_address_are_cached_refetched_for_a_new_kid_and_unreachable_is_503(
    api_settings, demo_venue, identity, tmp_path, issuer
):
    oidc, _ = issuer
    k1, k2 = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    server = _KeyServer([_jwk(k1, "k1")])

    def token(key, kid, name):
        now = int(time.time())
        claims = {"iss": "https://idp.example", "aud": "beffroi", "iat": now, "exp": now + 300}
        claims |= {"sub": name, "roles": ["viewer"], "sites": ["stade-demo"]}
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    by_url = oidc.model_copy(update={"jwks_file": None, "jwks_url": server.url, "jwks_refetch_s": 0.0})
    try:
        with make_client(api_settings, demo_venue, identity, tmp_path, oidc=by_url) as client:

            def get(tok):
                return client.get("/sites", headers={"Authorization": f"Bearer {tok}"})

            assert server.fetches == 0  # nothing is fetched before a token needs it
            assert [get(token(k1, "k1", n)).status_code for n in ("a", "b", "c")] == [200, 200, 200]
            assert server.fetches == 1  # one fetch, then the cached set
            server.keys = [_jwk(k1, "k1"), _jwk(k2, "k2")]  # the issuer rotates in a new key
            assert get(token(k2, "k2", "d")).status_code == 200
            assert server.fetches == 2
            assert get(token(k2, "k3", "e")).status_code == 401  # a kid the issuer does not have
            server.stop()
            assert get(token(k1, "k1", "f")).status_code == 200  # cached keys outlive an outage
    finally:
        if server.thread.is_alive():
            server.stop()

    gone = by_url.model_copy(update={"jwks_url": server.url, "jwks_timeout_s": 2.0})
    with make_client(api_settings, demo_venue, identity, tmp_path, oidc=gone) as client:
        r = client.get("/sites", headers={"Authorization": f"Bearer {token(k1, 'k1', 'g')}"})
    assert r.status_code == 503
    reason = r.json()["reason"]
    assert reason.startswith(f"the keys of https://idp.example cannot be read from {server.url}: "), reason
