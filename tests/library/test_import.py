"""``import frugal`` stays cheap: `frugal.wrap` is imported on first use, LangChain never."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_import_frugal_loads_neither_the_pipeline_nor_langchain() -> None:
    loaded = loaded_after("import frugal")
    assert "frugal.pipeline" not in loaded and "frugal.library" not in loaded
    assert not any(name.startswith("langchain") for name in loaded)


def test_frugal_wrap_is_the_librarys() -> None:
    loaded = loaded_after(
        "import frugal, frugal.library\nassert frugal.wrap is frugal.library.wrap"
    )
    assert "frugal.library.clients" in loaded
    assert not any(name.startswith("langchain") for name in loaded)
