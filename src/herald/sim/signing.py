"""Ed25519 signing as the platform does it for webhook pushes (docs/sim.md).

The bot secret is the key material: repeated until it is at least 32 bytes, cut to 32, used as
the raw Ed25519 seed. Pushes are signed over `timestamp + raw body`; the op 13 validation answer
is signed over `event_ts + plain_token`.
"""

from __future__ import annotations

import functools

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SEED_SIZE = 32


def seed_from_secret(secret: str) -> bytes:
    if not secret:
        raise ValueError("an empty secret cannot seed a key")
    seed = secret
    while len(seed) < SEED_SIZE:
        seed = seed + seed
    return seed[:SEED_SIZE].encode()


@functools.lru_cache(maxsize=32)
def private_key(secret: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed_from_secret(secret))


def public_key_hex(secret: str) -> str:
    return private_key(secret).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def sign(secret: str, message: bytes) -> str:
    return private_key(secret).sign(message).hex()


def sign_push(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Signature-Ed25519` header value for one push."""
    return sign(secret, timestamp.encode() + body)


def validation_signature(secret: str, event_ts: str, plain_token: str) -> str:
    """What a bot must answer to op 13: hex(sign(event_ts + plain_token))."""
    return sign(secret, (event_ts + plain_token).encode())


def verify(public_key: bytes, message: bytes, signature_hex: str) -> bool:
    """Checks a signature the way the docs tell bots to (64 bytes, top bits of the last byte clear)."""
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    if len(signature) != 64 or signature[63] & 224:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
