"""SM2 signatures with SM3 (GB/T 32918, GB/T 32905), the national-crypto (国密) signer.

The arithmetic is GmSSL's, through ``gmssl-pyx`` (a C extension that bundles GmSSL
statically, so no system library is needed). Signatures are DER (r, s) over
SM3(Z || message), Z computed with the default signer ID ``1234567812345678`` that
GM/T 0009 names and OpenSSL 3 needs to be told (``-pkeyopt distid:...``).

GmSSL hands out raw keys (a 32-byte scalar, a 64-byte point), so the PEM files here
are written and read by fixed DER templates: PKCS#8 for the private key and
SubjectPublicKeyInfo for the public one, with the algorithm id-ecPublicKey and the
curve sm2 (1.2.156.10197.1.301). These are the exact bytes ``openssl genpkey
-algorithm SM2`` writes, so either tool reads the other's keys.
"""

from __future__ import annotations

import base64
from pathlib import Path

import gmssl_pyx

from dataauth.audit.signing import VERIFIERS, key_id_of, pem_der
from dataauth.identity.keys import write_private

ALGORITHM = "SM2-SM3"
SIGNER_ID = b"1234567812345678"
KEY_FILE = "audit-signing.sm2.pem"

# ENTL || ID || a || b || xG || yG: what Z hashes before the public key (GB/T 32918.2 §5.5)
_Z_PREFIX = (
    (len(SIGNER_ID) * 8).to_bytes(2, "big")
    + SIGNER_ID
    + bytes.fromhex(
        "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
        "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
        "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
        "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0"
    )
)

_ALGORITHM_ID = bytes.fromhex("301306072a8648ce3d020106082a811ccf5501822d")
_SPKI_PREFIX = bytes.fromhex("3059") + _ALGORITHM_ID + bytes.fromhex("03420004")
_PKCS8_PREFIX = bytes.fromhex("308187020100") + _ALGORITHM_ID + bytes.fromhex("046d306b0201010420")
_PKCS8_MIDDLE = bytes.fromhex("a14403420004")


def pem_block(label: str, der: bytes) -> str:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def public_pem(point: bytes) -> str:
    """The SubjectPublicKeyInfo PEM of a 64-byte SM2 point (x || y)."""
    return pem_block("PUBLIC KEY", _SPKI_PREFIX + point)


def public_point(pem: str) -> bytes:
    """The 64-byte point of an SM2 public key PEM; raises ValueError if it is not one."""
    der = pem_der(pem, "PUBLIC KEY")
    if len(der) != len(_SPKI_PREFIX) + 64 or not der.startswith(_SPKI_PREFIX):
        raise ValueError("not an SM2 public key")
    return der[len(_SPKI_PREFIX) :]


def _z(point: bytes) -> bytes:
    return gmssl_pyx.sm3_hash(_Z_PREFIX + point)


def _private_pem(scalar: bytes, point: bytes) -> bytes:
    return pem_block("PRIVATE KEY", _PKCS8_PREFIX + scalar + _PKCS8_MIDDLE + point).encode("ascii")


def _read_private(data: bytes) -> tuple[bytes, bytes]:
    der = pem_der(data.decode("ascii", "replace"), "PRIVATE KEY")
    middle = len(_PKCS8_PREFIX) + 32
    if (
        len(der) != middle + len(_PKCS8_MIDDLE) + 64
        or not der.startswith(_PKCS8_PREFIX)
        or der[middle : middle + len(_PKCS8_MIDDLE)] != _PKCS8_MIDDLE
    ):
        raise ValueError("not an SM2 private key (PKCS#8 with its public key)")
    return der[len(_PKCS8_PREFIX) : middle], der[middle + len(_PKCS8_MIDDLE) :]


class SM2Signer:
    algorithm = ALGORITHM

    def __init__(self, scalar: bytes, point: bytes) -> None:
        self._scalar = scalar
        self._point = point
        self._pem = public_pem(point)
        self._z = _z(point)
        self.key_id = key_id_of(_SPKI_PREFIX + point)

    @classmethod
    def from_keys_dir(cls, keys_dir: Path) -> SM2Signer:
        """The SM2 audit signing key under ``keys_dir``, generated (0600) on first use."""
        path = keys_dir / KEY_FILE
        if not path.exists():
            point, scalar = gmssl_pyx.sm2_key_generate()
            write_private(path, _private_pem(scalar, point))
        try:
            signer = cls(*_read_private(path.read_bytes()))
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None
        # the file carries the point beside the scalar: a mismatch would sign heads that
        # no one can verify, so find it now rather than in a regulator's export
        if not verify_sm2(
            signer.public_key_pem(), KEY_FILE.encode(), signer.sign(KEY_FILE.encode())
        ):
            raise ValueError(f"{path.name}: its public key is not its private key's")
        return signer

    def sign(self, message: bytes) -> bytes:
        # SM3(Z || message) hashed here: gmssl-pyx's sm2_sign, which does the same, takes
        # ten times as long (docs/deployment.md), and heads are signed under the log's lock
        return gmssl_pyx.sm2_sign_sm3_digest(self._scalar, gmssl_pyx.sm3_hash(self._z + message))

    def public_key_pem(self) -> str:
        return self._pem


def verify_sm2(public_key_pem: str, message: bytes, signature: bytes) -> bool:
    # GmSSL writes a trace to stderr for a signature that is not DER: refuse those first
    if len(signature) < 8 or signature[0] != 0x30 or signature[1] != len(signature) - 2:
        return False
    try:
        point = public_point(public_key_pem)
        digest = gmssl_pyx.sm3_hash(_z(point) + message)
        return bool(gmssl_pyx.sm2_verify_sm3_digest(point, digest, signature))
    except gmssl_pyx.GmsslInnerError:
        return False


VERIFIERS[ALGORITHM] = verify_sm2
