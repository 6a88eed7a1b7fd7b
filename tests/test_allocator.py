"""retain_freed_memory: freed memory stays in the process (no page faults on reuse), bad
arguments are refused, and the lfpsurrogate command applies it."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from lfpsurrogate import InputError, retain_freed_memory

# Page faults per round of allocating, writing and freeing three 24 MB arrays, after a first
# round: glibc's defaults return the memory to the system and fault it in again each round.
PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    if sys.argv[1] == "retain":
        import lfpsurrogate
        assert lfpsurrogate.retain_freed_memory() is not None
    def step():
        arrays = [np.ones(3 * 2**20) for _ in range(3)]
        del arrays
    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    print("FAULTS", (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
""")


def _faults(mode: str) -> float:
    # numpy asks for transparent huge pages on large arrays, which makes the count depend on
    # the system's THP setting (about 1 070 with it here, 12 900 without); without it, every
    # 4-KB page faults
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}
    env = {k: v for k, v in env.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return float([ln for ln in out.stdout.splitlines() if ln.startswith("FAULTS")][0].split()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_freed_memory_is_reused_without_page_faults():
    default, retained = _faults("default"), _faults("retain")
    assert default > 5000, default       # the probe does exercise the allocator (18 432 pages)
    assert retained < 0.05 * default, (retained, default)


@pytest.mark.parametrize("bad", [0, 63, 2048, True, 1.5, "1024", None])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(InputError, match="max_mb=.*64 to 2047"):
        retain_freed_memory(bad)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_the_command_line_applies_it(tmp_path):
    code = textwrap.dedent(f"""
        from lfpsurrogate.allocator import allocator_settings
        from lfpsurrogate.cli import main
        before = allocator_settings()
        rc = main(["dataset", "info", {str(tmp_path / "missing.zarr")!r}])
        print("RESULT", before, rc, allocator_settings())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")][0]
    assert line.startswith("RESULT None 2 {'mmap_threshold_bytes'"), (line, out.stderr[-1000:])
