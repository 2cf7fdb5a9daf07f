"""Per-device MQTT credentials, derived from one device secret so nothing per device is stored."""

from __future__ import annotations

import hashlib
import hmac


def device_password(secret: str, device_id: str) -> str:
    return hmac.new(secret.encode(), device_id.encode(), hashlib.sha256).hexdigest()


def device_client_id(namespace: str, device_id: str) -> str:
    return f"urn:lo:nsid:{namespace}:{device_id}"


def data_topic(device_id: str) -> str:
    return f"dev/{device_id}/data"
