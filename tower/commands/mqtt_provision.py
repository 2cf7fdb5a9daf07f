"""`beffroi mqtt-provision --venue FILE...`: give every device of the venue(s) its MQTT login.

Each device's user name is its id and its password `device_password(device_secret, device_id)`.
Users are hashed by `mosquitto_passwd -U` into the broker's password file
($BEFFROI_STATE_DIR/mosquitto/passwd), then Mosquitto is told to reload (SIGHUP). Entries that
already verify are left alone, so running it again changes nothing.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import hmac
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from beffroi.mqtt_auth import device_client_id, device_password
from beffroi.settings import BRIDGE_CLIENT_PREFIX
from beffroi.venue import Venue
from beffroi.yamlconf import load_model
from tower.settings import Settings, load_settings

RESERVED_PREFIX = BRIDGE_CLIENT_PREFIX
"""A device named beffroi-bridge* would get that client id on the devices' port (the broker uses the
user name as client id there): it could take over a bridge's session. Refused."""


class ProvisionError(RuntimeError):
    """Provisioning failed; the message names the file or device concerned."""


def state_dir() -> Path:
    return Path(os.environ.get("BEFFROI_STATE_DIR") or Path.home() / ".local" / "state" / "beffroi")


def passwd_path() -> Path:
    return state_dir() / "mosquitto" / "passwd"


def hash_matches(stored: str, password: str) -> bool:
    """Whether a Mosquitto password-file hash ($6$ SHA-512 or $7$ PBKDF2-SHA512) is of `password`."""
    parts = stored.split("$")
    try:
        if len(parts) == 4 and parts[1] == "6":
            salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            computed = hashlib.sha512(password.encode() + salt).digest()
        elif len(parts) == 5 and parts[1] == "7":
            iterations = int(parts[2])
            salt, digest = base64.b64decode(parts[3]), base64.b64decode(parts[4])
            computed = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(digest))
        else:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(computed, digest)


def _read_entries(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            user, sep, stored = line.partition(":")
            if sep:
                entries[user] = stored
    return entries


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """The lock deploy/local/up also takes (flock on passwd.lock) before it touches the file."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _hash_all(directory: Path, credentials: Mapping[str, str]) -> dict[str, str]:
    fd, name = tempfile.mkstemp(prefix=".provision-", dir=directory)
    try:
        with os.fdopen(fd, "w") as plain:
            plain.writelines(f"{user}:{password}\n" for user, password in credentials.items())
        result = subprocess.run(["mosquitto_passwd", "-U", name], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ProvisionError(
                f"mosquitto_passwd -U failed: {result.stderr.strip() or result.stdout.strip()}"
            )
        return _read_entries(Path(name))
    except FileNotFoundError as exc:
        raise ProvisionError(
            "mosquitto_passwd not found: run deploy/local/up (it installs mosquitto)"
        ) from exc
    finally:
        Path(name).unlink(missing_ok=True)


def provision(path: Path, credentials: Mapping[str, str]) -> int:
    """Make `path` hold these passwords for these users (others untouched); returns how many changed."""
    for user in credentials:
        if user.startswith(RESERVED_PREFIX) or ":" in user or not user:
            raise ProvisionError(f"device id {user!r} cannot be an MQTT user name (reserved or invalid)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        entries = _read_entries(path)
        todo = {u: p for u, p in credentials.items() if not hash_matches(entries.get(u, ""), p)}
        if not todo:
            return 0
        hashed = _hash_all(path.parent, todo)
        missing = set(todo) - set(hashed)
        if missing:
            raise ProvisionError(
                f"mosquitto_passwd did not hash {len(missing)} users, e.g. {sorted(missing)[0]!r}"
            )
        entries.update(hashed)
        _write_entries(path, entries)
        return len(todo)


def deprovision(path: Path, users: Iterable[str]) -> int:
    """Remove these users' logins from `path` (others untouched); returns how many were removed."""
    gone = set(users)
    if not gone or not path.exists():
        return 0
    with _locked(path):
        entries = _read_entries(path)
        kept = {u: stored for u, stored in entries.items() if u not in gone}
        if len(kept) == len(entries):
            return 0
        _write_entries(path, kept)
        return len(entries) - len(kept)


def logins(path: Path) -> set[str]:
    """The user names `path` holds."""
    return set(_read_entries(path))


def _write_entries(path: Path, entries: Mapping[str, str]) -> None:
    """Replace `path` atomically; the new file keeps the old one's owner (the broker's own user, which
    re-reads it on SIGHUP) and mode."""
    tmp = path.with_name(path.name + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.writelines(f"{user}:{stored}\n" for user, stored in entries.items())
        if path.exists():
            old = path.stat()
            if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                os.fchown(out.fileno(), old.st_uid, old.st_gid)
            os.fchmod(out.fileno(), stat.S_IMODE(old.st_mode))
    os.replace(tmp, path)


def reload_broker() -> int:
    """SIGHUP our Mosquitto so it rereads the password file; returns its pid."""
    pid_file = state_dir() / "mosquitto" / "mosquitto.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise ProvisionError(
            f"cannot signal mosquitto ({pid_file}): {exc}; is the stack up (deploy/local/up)?"
        ) from exc
    return pid


def _try_login(settings: Settings, username: str, password: str, *, client_id: str) -> str:
    """One MQTT v5 CONNECT: the CONNACK reason ("Success", "Not authorized", ...) or the socket error."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    answered = threading.Event()
    outcome: list[str] = []

    def on_connect(client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        outcome.append(str(rc))
        answered.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.on_connect = on_connect
    try:
        client.connect(settings.mqtt.host, settings.mqtt.port, keepalive=10)
        client.loop_start()
        answered.wait(2.0)
    except OSError as exc:
        return str(exc)
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome[0] if outcome else "no CONNACK"


def wait_login(
    settings: Settings, username: str, password: str, *, client_id: str, timeout_s: float = 10.0
) -> None:
    """Block until the broker accepts this login: after a SIGHUP the reload takes a moment."""
    deadline = time.monotonic() + timeout_s
    while (last := _try_login(settings, username, password, client_id=client_id)) != "Success":
        if time.monotonic() > deadline:
            raise ProvisionError(f"mosquitto still refuses {username!r} after reload: {last}")
        time.sleep(0.1)


def device_credentials(venues: list[Venue], secret: str) -> dict[str, str]:
    return {device_id: device_password(secret, device_id) for venue in venues for device_id in venue.devices}


def _handle(args: argparse.Namespace) -> int:
    settings = load_settings(args.settings)
    if settings.mqtt.device_secret is None:
        print(
            "mqtt-provision: BEFFROI_MQTT__DEVICE_SECRET is not set; run deploy/local/up and "
            f"source {state_dir() / 'stack.env'}",
            file=sys.stderr,
        )
        return 2
    venues = [load_model(Venue, path) for path in args.venue]
    credentials = device_credentials(venues, settings.mqtt.device_secret.get_secret_value())
    path = passwd_path()
    try:
        changed = provision(path, credentials)
        if changed and not args.no_reload:
            reload_broker()
            user = next(reversed(credentials))
            client_id = device_client_id(venues[-1].namespace, user) + "-provision-check"
            wait_login(settings, user, credentials[user], client_id=client_id)
    except ProvisionError as exc:
        print(f"mqtt-provision: {exc}", file=sys.stderr)
        return 1
    print(f"mqtt-provision: {len(credentials)} devices, {changed} added or updated in {path}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("mqtt-provision", help="add one MQTT login per device of the venue(s) to Mosquitto")
    p.add_argument("--venue", action="append", required=True, metavar="FILE", help="venue YAML (repeatable)")
    p.add_argument("--settings", metavar="FILE", help="settings YAML (the environment still overrides it)")
    p.add_argument(
        "--no-reload",
        action="store_true",
        help="only write the password file (for a broker that deploy/local/up did not start)",
    )
    p.set_defaults(handler=_handle)
