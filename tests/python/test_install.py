"""pip install --no-build-isolation . from the checkout, with Debian's pip, setuptools and wheel
(no package index), into a virtual environment that sees Debian's numpy; then import it there."""

import os
import subprocess
import sys

from conftest import SOURCE


def test_pip_install_from_the_checkout(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATCHVEC_BUILD_DIR"] = os.environ["PATCHVEC_BUILD_DIR"]  # the tree CTest runs in
    env["PIP_NO_INDEX"] = "1"
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-build-isolation",
                          "--no-deps", str(SOURCE)], env=env, capture_output=True, text=True,
                         cwd=tmp_path)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import patchvec, pathlib; print(patchvec.__version__, pathlib.Path(patchvec.__file__))"],
        env=env, capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    version, location = check.stdout.split()
    assert location.startswith(str(venv))  # the installed copy, not the build tree's
    assert version.count(".") == 2
