"""CKKS parameters the gateway accepts, and reading operators' bytes within bounds.

Every context and ciphertext an operator sends is checked against an allowlist of
parameter sets before TenSEAL does anything with it:

- sizes first: a context or ciphertext may be no larger than its parameter set implies
  (uncompressed), so no request makes the gateway read more than a few hundred KB;
- a context is parsed in a child process under a memory limit (``probe``): TenSEAL and
  SEAL decompress what they read, so a small hostile context could otherwise ask for
  gigabytes, and a crash there takes the child down, not the gateway. Registration is
  rare, so a child per registration is cheap enough;
- a registered context must match an allowlisted set exactly (SEAL's parameter id, a
  hash of degree and modulus chain), hold a public key and no secret key;
- ciphertexts are read against that registered context, which fixes their degree and
  modulus chain: SEAL refuses metadata that does not match it before allocating.
"""

from __future__ import annotations

import hashlib
import json
import resource
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from typing import Any

from dataauth.canonical import canonical
from dataauth.errors import Problem, unprocessable

PROBE_MEMORY_BYTES = 1024 * 1024 * 1024
PROBE_TIMEOUT_SECONDS = 30.0
HEADROOM = 64 * 1024
"""Bytes allowed beyond the raw polynomial data: headers, parameters, protobuf framing."""


@dataclass(frozen=True)
class Parameters:
    """One allowlisted CKKS parameter set."""

    name: str
    degree: int
    coeff_bits: tuple[int, ...]
    scale_bits: int

    @property
    def slots(self) -> int:
        return self.degree // 2

    @property
    def max_ciphertext_bytes(self) -> int:
        """Two polynomials over the data primes (all but the special one), 8 bytes a word."""
        return 2 * self.degree * (len(self.coeff_bits) - 1) * 8 + HEADROOM

    @property
    def max_context_bytes(self) -> int:
        """Parameters and a public key (two polynomials over all primes); no other keys."""
        return 2 * self.degree * len(self.coeff_bits) * 8 + HEADROOM

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "poly_modulus_degree": self.degree,
            "coeff_mod_bit_sizes": list(self.coeff_bits),
            "scale_bits": self.scale_bits,
            "slots": self.slots,
        }


ALLOWED = {
    p.name: p
    for p in (
        Parameters("ckks-8192", 8192, (60, 40, 40, 60), 40),
        Parameters("ckks-16384", 16384, (60, 40, 40, 40, 60), 40),
    )
}
"""One multiply by a plaintext and a rescale use one 40-bit prime; the rest is headroom
(values up to about 2^20 at a 2^40 scale) and the special prime for key switching."""

MAX_CONTEXT_BYTES = max(p.max_context_bytes for p in ALLOWED.values())


@cache
def parms_id(parameters: Parameters) -> list[int]:
    """SEAL's parameter id for an allowlisted set (TenSEAL picks the primes the same way)."""
    import tenseal as ts

    reference = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=parameters.degree,
        coeff_mod_bit_sizes=list(parameters.coeff_bits),
    )
    return list(reference.seal_context().data.key_parms_id())


def _probe_facts(data: bytes) -> dict[str, Any]:
    """What a context holds (run in the child)."""
    import tenseal as ts

    context = ts.context_from(data)
    seal = context.seal_context().data
    return {
        "degree": seal.key_context_data().parms().poly_modulus_degree(),
        "parms_id": list(seal.key_parms_id()),
        "scale": context.global_scale,
        "private": context.is_private(),
        "public_key": context.has_public_key(),
        "galois_keys": context.has_galois_keys(),
    }


def _probe_main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (PROBE_MEMORY_BYTES, PROBE_MEMORY_BYTES))
    data = sys.stdin.buffer.read(MAX_CONTEXT_BYTES + 1)
    try:
        facts = _probe_facts(data)
    except Exception as exc:  # anything TenSEAL raises is a malformed context
        facts = {"error": type(exc).__name__}
    sys.stdout.write(json.dumps(facts))


def probe(data: bytes) -> dict[str, Any]:
    """Read a context in a child process under a memory limit; its facts, or a 422."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dataauth.ckks"],
            input=data,
            capture_output=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )
        facts = json.loads(done.stdout) if done.returncode == 0 else {"error": "crashed"}
    except (subprocess.TimeoutExpired, ValueError):
        facts = {"error": "unreadable"}
    if "error" in facts:
        raise unprocessable("invalid_context", "the context could not be read as a CKKS context")
    return facts


def check_context(data: bytes) -> Parameters:
    """The allowlisted parameter set of a public context, or a 4xx saying why not."""
    if len(data) > MAX_CONTEXT_BYTES:
        raise Problem(
            413,
            "context_too_large",
            f"a context is at most {MAX_CONTEXT_BYTES} bytes: export it without the "
            "secret key, relinearization and Galois keys (none is needed)",
        )
    facts = probe(data)
    if facts["private"]:
        raise unprocessable(
            "secret_key_sent", "the context holds a secret key: send only its public part"
        )
    if not facts["public_key"]:
        raise unprocessable(
            "no_public_key", "the context holds no public key (results are re-randomised with it)"
        )
    if facts["galois_keys"]:
        raise unprocessable("galois_keys_sent", "send no Galois keys: scoring needs no rotations")
    for parameters in ALLOWED.values():
        if parameters.degree == facts["degree"] and parms_id(parameters) == facts["parms_id"]:
            if facts["scale"] != float(2**parameters.scale_bits):
                raise unprocessable(
                    "parameters_not_allowed",
                    f"the global scale must be 2^{parameters.scale_bits}",
                )
            if len(data) > parameters.max_context_bytes:
                raise Problem(413, "context_too_large", "the context is over its size bound")
            return parameters
    allowed = ", ".join(
        f"{p.degree} with {list(p.coeff_bits)} at 2^{p.scale_bits}" for p in ALLOWED.values()
    )
    raise unprocessable(
        "parameters_not_allowed", f"the context's parameters are not allowed; allowed: {allowed}"
    )


def load_context(data: bytes) -> Any:
    """A context that passed ``check_context`` once (read from the gateway database)."""
    import tenseal as ts

    return ts.context_from(data)


def load_vector(context: Any, parameters: Parameters, data: bytes, what: str) -> Any:
    """One ciphertext of a full block of slots, read against a registered context."""
    import tenseal as ts

    if len(data) > parameters.max_ciphertext_bytes:
        raise Problem(
            413,
            "ciphertext_too_large",
            f"{what} is over {parameters.max_ciphertext_bytes} bytes",
        )
    try:
        vector = ts.ckks_vector_from(context, data)
    except Exception:  # TenSEAL raises several types for malformed bytes
        raise unprocessable(
            "invalid_ciphertext", f"{what} is not a CKKS vector under this context"
        ) from None
    if vector.size() != parameters.slots:
        raise unprocessable(
            "wrong_vector_length",
            f"{what} holds {vector.size()} slots; encrypt {parameters.slots} (the weight "
            "replicated in every slot)",
        )
    return vector


if __name__ == "__main__":
    _probe_main()


def ciphertext_digest(blobs: list[bytes]) -> str:
    """sha256 of the canonical list of each ciphertext's sha256 (weights, then the bias):
    what a filing is bound to, and what a request carrying weights must reproduce."""
    parts = [hashlib.sha256(blob).hexdigest() for blob in blobs]
    return "sha256:" + hashlib.sha256(canonical(parts)).hexdigest()
