"""Client keys and the tenants they belong to (``FRUGAL_API_KEYS_FILE``).

A key looks like ``fk_<id>_<secret>``. The file keeps, per key, its public ``id``, the tenant, a
random salt and the SHA-256 of salt + secret, never the key itself; `frugal keys add TENANT`
writes a new entry and prints the key once. A request proves its tenant with
``Authorization: Bearer <key>`` (what the `openai` SDK sends as its ``api_key``); the secret is
compared in constant time.

    keys:
      - {id: 3f9c2e7b, tenant: acme, salt: "…", sha256: "…"}
    tenants:                      # optional
      acme: {namespace: shared-faq}
      globex: {namespace: shared-faq}

The tenant is a hard partition of the cache. Tenants that name the same ``namespace`` share one
partition; that is configuration only, never something a request can ask for. Without a keys
file the gateway is open and everyone is the tenant ``default``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from frugal.errors import KeysFileError

PREFIX = "fk"
OPEN_TENANT = "default"


@dataclass(frozen=True)
class Tenant:
    name: str
    namespace: str  # the cache partition: its own name unless it opted into a shared one


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


class Keys:
    """The keys of one file; `tenant_for` turns a presented key into its tenant."""

    def __init__(self, entries: dict[str, dict[str, str]], namespaces: dict[str, str]) -> None:
        self._entries = entries  # id -> {tenant, salt, sha256}
        self._namespaces = namespaces

    @classmethod
    def load(cls, path: Path) -> Keys:
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise KeysFileError(f"cannot read the keys file {path}: {exc}") from None
        data = data or {}
        if not isinstance(data, dict):
            raise KeysFileError(f"{path}: expected a mapping with 'keys' (and 'tenants')")
        entries: dict[str, dict[str, str]] = {}
        for number, entry in enumerate(data.get("keys") or [], 1):
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(field), str) and entry.get(field)
                for field in ("id", "tenant", "salt", "sha256")
            ):
                raise KeysFileError(f"{path}: key {number} needs id, tenant, salt and sha256")
            entries[entry["id"]] = {k: entry[k] for k in ("tenant", "salt", "sha256")}
        namespaces = {}
        for name, options in (data.get("tenants") or {}).items():
            namespace = (options or {}).get("namespace") if isinstance(options, dict) else None
            if namespace is not None:
                if not isinstance(namespace, str) or not namespace:
                    raise KeysFileError(f"{path}: tenant {name!r} has an empty namespace")
                namespaces[str(name)] = namespace
        return cls(entries, namespaces)

    def __len__(self) -> int:
        return len(self._entries)

    def tenant_for(self, key: str) -> Tenant | None:
        """The tenant of ``key``, or ``None`` when it is not a valid key."""
        prefix, _, rest = key.partition("_")
        key_id, _, secret = rest.partition("_")
        entry = self._entries.get(key_id) if prefix == PREFIX else None
        # Compared in constant time; an unknown id still costs one comparison.
        expected = entry["sha256"] if entry else _digest("unknown", "")
        given = _digest(entry["salt"] if entry else "unknown", secret)
        if not hmac.compare_digest(given.encode(), expected.encode()) or entry is None:
            return None
        name = entry["tenant"]
        return Tenant(name=name, namespace=self.namespace_of(name))

    def namespace_of(self, tenant: str) -> str:
        """The cache partition of ``tenant``: its namespace, or its own name."""
        return self._namespaces.get(tenant, tenant)

    def tenants_in(self, partition: str) -> set[str]:
        """Every tenant the file knows (by a key or by a namespace) whose partition it is."""
        known = {entry["tenant"] for entry in self._entries.values()} | set(self._namespaces)
        return {tenant for tenant in known if self.namespace_of(tenant) == partition}


def add_key(path: Path, tenant: str) -> str:
    """Create a key for ``tenant``, record its salted hash in ``path`` (created if absent) and
    return the key, which is stored nowhere."""
    if not tenant or not tenant.strip():
        raise KeysFileError("the tenant needs a name")
    data: dict[str, Any] = {}
    if path.exists():
        loaded = (
            yaml.safe_load(path.read_text())
            if path.suffix != ".json"
            else json.loads(path.read_text())
        )
        data = loaded or {}
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)
    salt = secrets.token_hex(16)
    entry = {"id": key_id, "tenant": tenant, "salt": salt, "sha256": _digest(salt, secret)}
    data.setdefault("keys", []).append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data)
    path.write_text(text)
    path.chmod(0o600)
    return f"{PREFIX}_{key_id}_{secret}"
