"""docs/python.md's example runs as written: its ```python blocks under "## Example", in order,
in an empty folder, with the patchvec program on PATH."""

import os
import pathlib
import re
import subprocess
import sys

from conftest import BINARY, SOURCE


def example_code():
    text = (SOURCE / "docs" / "python.md").read_text()
    section = text.split("\n## Example\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "docs/python.md has no example"
    return "\n".join(blocks)


def test_the_example_runs_as_written(tmp_path):
    env = dict(os.environ)
    env["PATH"] = str(pathlib.Path(BINARY).parent) + os.pathsep + env.get("PATH", "")
    done = subprocess.run([sys.executable, "-c", example_code()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "overlay.png").stat().st_size > 1000
    assert (tmp_path / "models" / "tile.pvm").exists()
    assert "image AUROC" in done.stdout
