"""Server side of HTTP/RTSP digest authentication (RFC 7616/2617, MD5, qop=auth or none).

Shared by the simulated ONVIF device (snapshots) and the RTSP responder.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class DigestRealm:
    """One realm with one user; nonces it issued are remembered (bounded)."""

    def __init__(self, realm: str, username: str, password: str) -> None:
        self.realm = realm
        self.username = username
        self.password = password
        self._nonces: list[str] = []

    def challenge(self, qop: bool = True) -> str:
        nonce = secrets.token_hex(16)
        self._nonces = [*self._nonces[-63:], nonce]
        extra = ', qop="auth"' if qop else ""
        return f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5{extra}'

    def verify(self, header: str | None, method: str) -> bool:
        if not header or not header.lower().startswith("digest "):
            return False
        params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                  for m in _PARAM.finditer(header[7:])}
        if (params.get("username") != self.username or params.get("realm") != self.realm
                or params.get("nonce") not in self._nonces):
            return False
        ha1 = _md5(f"{self.username}:{self.realm}:{self.password}")
        ha2 = _md5(f"{method}:{params.get('uri', '')}")
        if params.get("qop"):
            expected = _md5(f"{ha1}:{params['nonce']}:{params.get('nc', '')}:"
                            f"{params.get('cnonce', '')}:{params['qop']}:{ha2}")
        else:
            expected = _md5(f"{ha1}:{params['nonce']}:{ha2}")
        return secrets.compare_digest(expected, params.get("response", ""))
