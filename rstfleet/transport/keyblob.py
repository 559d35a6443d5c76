"""An SSH public key as OpenSSH 9.2 reads it from a known_hosts line (sshkey.c), in the stdlib.

OpenSSH skips a known_hosts line whose key it cannot load, and compares keys by their public
parts, not their bytes; this module gives both answers without paramiko, so one bad line is
that line's problem only:

    parse_key("ssh-ed25519", blob)  ->  PublicKey("ssh-ed25519", identity=("ssh-ed25519", pk), cert=False)
    parse_key("ssh-rsa", short_rsa) ->  KeyBlobError("RSA modulus of 512 bits (OpenSSH needs ≥ 1024)")

Checked as OpenSSH checks: the type named on the line (a full name), the type inside the blob
(which may also be a short name such as ``ED25519``), each field, no trailing bytes, RSA ≥ 1024 bits,
ECDSA points on their curve. A certificate is read up to its public key (what ``@revoked``
compares); its signature is not verified (paramiko never presents host certificates).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# OpenSSH's key implementations: name -> (plain kind, ECDSA curve, certificate?, short name).
_KINDS = {
    "ssh-ed25519": ("ed25519", None, False, "ED25519"),
    "sk-ssh-ed25519@openssh.com": ("ed25519-sk", None, False, "ED25519-SK"),
    "ecdsa-sha2-nistp256": ("ecdsa", "nistp256", False, "ECDSA"),
    "ecdsa-sha2-nistp384": ("ecdsa", "nistp384", False, "ECDSA"),
    "ecdsa-sha2-nistp521": ("ecdsa", "nistp521", False, "ECDSA"),
    "sk-ecdsa-sha2-nistp256@openssh.com": ("ecdsa-sk", "nistp256", False, "ECDSA-SK"),
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com": ("ecdsa-sk", "nistp256", False, "ECDSA-SK"),
    "ssh-dss": ("dsa", None, False, "DSA"),
    "ssh-rsa": ("rsa", None, False, "RSA"),
    "rsa-sha2-256": ("rsa", None, False, "RSA"),
    "rsa-sha2-512": ("rsa", None, False, "RSA"),
}
_KINDS.update({  # each plain type but webauthn's has a certificate: ssh-rsa-cert-v01@openssh.com…
    name.replace("@openssh.com", "") + "-cert-v01@openssh.com": (kind, curve, True, short + "-CERT")
    for name, (kind, curve, _, short) in list(_KINDS.items()) if not name.startswith("webauthn-")})

# NIST curves (FIPS 186-4 D.1.2): field prime p, coefficient b (a = -3), group order n.
_CURVES = {
    "nistp256": (2**256 - 2**224 + 2**192 + 2**96 - 1,
                 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b,
                 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551),
    "nistp384": (2**384 - 2**128 - 2**96 + 2**32 - 1,
                 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef,
                 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973),
    "nistp521": (2**521 - 1,
                 0x0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00,
                 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409),
}
RSA_MIN_BITS = 1024          # SSH_RSA_MINIMUM_MODULUS_SIZE
MAX_BIGNUM_BYTES = 2048      # SSHBUF_MAX_BIGNUM


class KeyBlobError(ValueError):
    """Why OpenSSH would not load this key (the line is skipped)."""


@dataclass(frozen=True)
class PublicKey:
    """``identity`` holds the public parts OpenSSH's sshkey_equal_public compares."""
    kind: str
    identity: tuple
    cert: bool

    @property
    def curve(self) -> str | None:
        return self.identity[1] if self.kind in ("ecdsa", "ecdsa-sk") else None


def kind_of(type_name: str) -> tuple | None:
    """sshkey_type_from_name, for the type inside a blob: a full name, or (case-insensitively) a
    plain type's short name; the type on the line itself must be a full name."""
    if type_name in _KINDS:
        return _KINDS[type_name]
    return next((v for v in _KINDS.values() if not v[2] and v[3].lower() == type_name.lower()), None)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def string(self) -> bytes:
        if self.at + 4 > len(self.data):
            raise KeyBlobError("key blob truncated")
        (size,) = struct.unpack_from(">I", self.data, self.at)
        if self.at + 4 + size > len(self.data):
            raise KeyBlobError("key blob truncated")
        self.at += 4 + size
        return self.data[self.at - size:self.at]

    def cstring(self) -> str:
        raw = self.string()
        if b"\0" in raw[:-1]:
            raise KeyBlobError("NUL inside a key blob string")
        return raw.rstrip(b"\0").decode("latin-1")

    def bignum(self) -> int:
        raw = self.string()
        if raw and raw[0] & 0x80:
            raise KeyBlobError("negative number in key blob")
        if len(raw) > MAX_BIGNUM_BYTES + 1 or (len(raw) == MAX_BIGNUM_BYTES + 1 and raw[0]):
            raise KeyBlobError("number too large in key blob")
        return int.from_bytes(raw, "big")


def _ec_point(curve: str, reader: _Reader) -> tuple[int, int]:
    """sshbuf_get_eckey + sshkey_ec_validate_public: uncompressed, on the curve, sane coordinates."""
    p, b, n = _CURVES[curve]
    size = (p.bit_length() + 7) // 8
    raw = reader.string()
    if len(raw) != 1 + 2 * size or raw[0] != 4:
        raise KeyBlobError("ECDSA point not in uncompressed form")
    x, y = int.from_bytes(raw[1:1 + size], "big"), int.from_bytes(raw[1 + size:], "big")
    if x >= p or y >= p or (y * y - (x * x * x - 3 * x + b)) % p:
        raise KeyBlobError("ECDSA point not on its curve")
    half = n.bit_length() // 2
    if x.bit_length() <= half or y.bit_length() <= half or x >= n - 1 or y >= n - 1:
        raise KeyBlobError("ECDSA point rejected by OpenSSH's checks")
    return x, y


def _public_parts(kind: str, curve: str | None, reader: _Reader) -> tuple:
    if kind in ("ed25519", "ed25519-sk"):
        pk = reader.string()
        if len(pk) != 32:
            raise KeyBlobError(f"Ed25519 key of {len(pk)} bytes, not 32")
        return (pk, reader.cstring()) if kind == "ed25519-sk" else (pk,)
    if kind in ("ecdsa", "ecdsa-sk"):
        if reader.cstring() != curve:
            raise KeyBlobError("ECDSA curve name does not match the key type")
        point = _ec_point(curve, reader)
        return (curve, *point, reader.cstring()) if kind == "ecdsa-sk" else (curve, *point)
    if kind == "rsa":
        e, n = reader.bignum(), reader.bignum()
        if n.bit_length() < RSA_MIN_BITS:
            raise KeyBlobError(f"RSA modulus of {n.bit_length()} bits (OpenSSH needs ≥ {RSA_MIN_BITS})")
        return (e, n)
    return tuple(reader.bignum() for _ in range(4))          # dsa: p, q, g, y


def _curve(type_name: str) -> str | None:
    """sshkey_ecdsa_nid_from_name: only a full type name carries the curve."""
    return _KINDS[type_name][1] if type_name in _KINDS else None


def parse_key(line_type: str, blob: bytes) -> PublicKey:
    """The key of a known_hosts line (its type field and decoded blob), or KeyBlobError."""
    declared = _KINDS.get(line_type)                          # peek_type_nid: full names only
    if declared is None:
        raise KeyBlobError(f"unknown key type {line_type!r}")
    reader = _Reader(blob)
    blob_type = reader.cstring()
    inner = kind_of(blob_type)
    if inner is None:
        raise KeyBlobError(f"unknown key type {blob_type!r} inside the key")
    kind, cert = inner[0], inner[2]
    curve = _curve(blob_type) if kind in ("ecdsa", "ecdsa-sk") else None
    if (declared[0], declared[2]) != (kind, cert) or (kind in ("ecdsa", "ecdsa-sk") and (
            curve is None or _curve(line_type) != curve)):
        raise KeyBlobError(f"key type {line_type!r} does not match the key's {blob_type!r}")
    if cert:
        reader.string()                                       # the certificate's nonce
    parts = _public_parts(kind, curve, reader)
    if not cert and reader.at != len(blob):
        raise KeyBlobError("trailing bytes after the key")
    return PublicKey(kind, (kind, *parts), cert)
