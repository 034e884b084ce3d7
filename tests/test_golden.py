"""The four golden jobs (tests/golden.py) give the bytes recorded before the package moved."""

from __future__ import annotations

import pytest

import golden


@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_outputs_equal_recorded_digests(name, tmp_path, shared):
    table = golden.recorded().get(golden.platform_key())
    if table is None:
        pytest.skip(f"no golden digests recorded for this platform ({golden.platform_key()}); "
                    "record them with: python tests/golden.py --record")
    assert golden.CASES[name](tmp_path) == table[name]
