"""Import isolation; the removed rng field."""
import subprocess
import sys


def test_runtime_imports_no_compiler():
    code = ("import sys, dslc_runtime, dslc_runtime.trainer; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('lark', 'networkx', 'dslc', 'matplotlib')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_removed_rng_field_is_rejected():
    """The old `rng` counter input is gone from the schema; a manifest naming it is refused."""
    import pytest
    from dslc_runtime import parse_manifest
    from dslc_runtime.errors import ManifestError
    with pytest.raises(ManifestError, match="unknown field.*rng"):
        parse_manifest({"version": 1, "role": "training", "rng": {"input": "rng"}, "losses": ["loss"]})
