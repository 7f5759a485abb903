"""router_loss's k reaches C as an int: values that would wrap or truncate
(2**32+1 -> 1, 1.5 -> 1, True -> 1) are refused, not run as another k."""
import numpy as np
import pytest

import mfx


@pytest.mark.parametrize("k", [2**32 + 1, 1.5, True, 0, -1, "2"])
def test_bad_k_is_refused(k):
    z = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="k="):
        mfx.router_loss(z, "switch", k=k)


def test_integer_k_still_works():
    z = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    a, _ = mfx.router_loss(z, "switch", k=2)
    b, _ = mfx.router_loss(z, "switch", k=np.int64(2))
    assert a == b
