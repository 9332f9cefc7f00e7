"""Random damage to protobuf bytes, for the fuzz targets."""

from __future__ import annotations

import random


def mutate_wire(rng: random.Random, data: bytearray) -> bytes:
    """Flip bits, insert random bytes, delete runs or truncate, one to eight times."""
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(max(1, len(data)))
        action = rng.choice(["flip", "insert", "delete", "truncate"])
        if action == "flip" and data:
            data[position] ^= 1 << rng.randrange(8)
        elif action == "insert":
            data[position:position] = rng.randbytes(rng.randint(1, 8))
        elif action == "delete":
            del data[position:position + rng.randint(1, 8)]
        elif rng.random() < 0.3:
            del data[position:]
    return bytes(data)
