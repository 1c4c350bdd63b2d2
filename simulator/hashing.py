"""Counter-based random numbers: splitmix64 of (key, counter), so a value never depends on call order."""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

_M64: Final = (1 << 64) - 1
GOLDEN: Final = 0x9E3779B97F4A7C15
_U_GOLDEN: Final = np.uint64(GOLDEN)
_C1: Final = np.uint64(0xBF58476D1CE4E5B9)
_C2: Final = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def mix_int(x: int) -> int:
    """Return the splitmix64 finalizer of a Python int (exact, no numpy overflow warnings)."""
    x = (x + GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def key(seed: int, *parts: int) -> int:
    """Derive a 64-bit key from a seed and integer labels (channel, region, ...)."""
    k = mix_int(seed & _M64)
    for part in parts:
        k = mix_int(k ^ (part & _M64))
    return k


def row_keys(seed: int, channel: int, index: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Return one key per meter index for a channel."""
    base = np.array([key(seed, channel)], dtype=np.uint64)
    return mix(base ^ np.asarray(index, dtype=np.uint64))


def mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Apply the splitmix64 finalizer elementwise (wrap-around modulo 2**64 is intended)."""
    x = x + _U_GOLDEN
    x = (x ^ (x >> _S30)) * _C1
    x = (x ^ (x >> _S27)) * _C2
    result: NDArray[np.uint64] = x ^ (x >> _S31)
    return result


def hash_at(keys: NDArray[np.uint64], counter: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Return 64 random bits per (key, counter) pair (broadcast): splitmix64's stream position."""
    return mix(keys + np.asarray(counter).astype(np.uint64) * _U_GOLDEN)


def bits_uniform(h: NDArray[np.uint64], shift: int, width: int) -> NDArray[np.float64]:
    """Return uniforms in [0, 1) from `width` bits of `h` starting at bit `shift`."""
    mask = np.uint64((1 << width) - 1)
    result: NDArray[np.float64] = ((h >> np.uint64(shift)) & mask).astype(np.float64) * (
        1.0 / (1 << width)
    )
    return result


def uniform(h: NDArray[np.uint64]) -> NDArray[np.float64]:
    """Return uniforms in [0, 1) from the top 53 bits of `h`."""
    result: NDArray[np.float64] = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return result


def normal3(h: NDArray[np.uint64]) -> NDArray[np.float64]:
    """Return approximately standard normals (bounded at +-3) from three 16-bit uniforms of `h`."""
    # Irwin-Hall with n = 3: mean 1.5, sd 0.5; far cheaper than Box-Muller and bounded.
    total = bits_uniform(h, 0, 16) + bits_uniform(h, 16, 16) + bits_uniform(h, 32, 16)
    result: NDArray[np.float64] = (total - 1.5) * 2.0
    return result
