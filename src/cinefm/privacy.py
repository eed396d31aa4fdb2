"""Pseudonymization: keyed hashes of patient and study identifiers.

The key never lives in the repository. It comes from the environment variable
``CINEFM_PSEUDONYM_KEY`` or from the file named by ``privacy.key_file`` in the
config. Only the phantom cohort may run without one (it then uses a fixed,
public demo key: its identifiers are synthetic).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

ENV_VAR = "CINEFM_PSEUDONYM_KEY"
PHANTOM_KEY = b"cinefm-phantom-demo-key (synthetic data only)"
_PREFIX = {"patient": "P", "study": "S", "series": "R"}


class PrivacyError(RuntimeError):
    """Raised when real data would be processed without a pseudonymization key."""


def load_key(key_file: str | os.PathLike | None = None, *, phantom: bool = False) -> bytes:
    """Return the pseudonymization key from ``$CINEFM_PSEUDONYM_KEY`` or ``key_file``.

    Raises PrivacyError with the way to set one when neither is present, unless the
    cohort is the phantom (synthetic) cohort.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return env.encode()
    if key_file:
        p = Path(key_file)
        if not p.is_file():
            raise PrivacyError(f"config.privacy.key_file: file not found: {p}")
        key = p.read_bytes().strip()
        if len(key) < 16:
            raise PrivacyError(f"config.privacy.key_file: {p} holds {len(key)} bytes; use at least 16 random bytes")
        return key
    if phantom:
        return PHANTOM_KEY
    raise PrivacyError(
        "no pseudonymization key: set the environment variable "
        f"{ENV_VAR} or point config.privacy.key_file at a file holding a secret "
        "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))' > ~/.cinefm_key`). "
        "Keep it outside the repository; the same key gives the same pseudonyms on reruns."
    )


def pseudonymize(value: str, key: bytes, kind: str = "patient", length: int = 12) -> str:
    """Keyed hash (HMAC-SHA256) of an identifier: ``P``/``S``/``R`` + ``length`` hex digits.

    Deterministic for a key, irreversible without it; the prefix names the kind.
    """
    if kind not in _PREFIX:
        raise ValueError(f"kind must be one of {sorted(_PREFIX)}, got {kind!r}")
    digest = hmac.new(key, f"{kind}:{value.strip()}".encode(), hashlib.sha256).hexdigest()
    return _PREFIX[kind] + digest[:length]
