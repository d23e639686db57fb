"""pip install --no-build-isolation . : the Python module from this checkout (docs/python.md).

The extension is built by CMake like everything else (the tree in $PATCHVEC_BUILD_DIR, default
./build, configured when it is not yet: `make python` does the same) and installed with the
package's Python files from python/patchvec. Debian's pip, setuptools and wheel suffice; nothing
is fetched from a package index.
"""

import os
import pathlib
import re
import shutil
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent
BUILD = pathlib.Path(os.environ.get("PATCHVEC_BUILD_DIR", ROOT / "build"))
# The one place the version is written: CMake's project().
VERSION = re.search(r"project\(patchvec VERSION ([0-9.]+)",
                    (ROOT / "CMakeLists.txt").read_text()).group(1)


(BUILD / "setuptools").mkdir(parents=True, exist_ok=True)


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        if not (BUILD / "CMakeCache.txt").exists():
            subprocess.check_call(["cmake", "-S", str(ROOT), "-B", str(BUILD),
                                   "-DCMAKE_BUILD_TYPE=Release"])
        subprocess.check_call(["cmake", "--build", str(BUILD), "--target", "python",
                               "-j", str(os.cpu_count() or 1)])
        built = sorted((BUILD / "python" / "patchvec").glob("_patchvec*.so"))
        if not built:
            raise RuntimeError(f"CMake built no _patchvec module in {BUILD}/python/patchvec")
        target = pathlib.Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], target)


setup(
    name="patchvec",
    version=VERSION,
    description="PatchCore visual anomaly inspection on a CPU: the PatchVec C++ engine from Python",
    python_requires=">=3.11",
    install_requires=["numpy"],
    packages=["patchvec"],
    package_dir={"": "python"},
    package_data={"patchvec": ["*.pyi", "py.typed"]},
    ext_modules=[Extension("patchvec._patchvec", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    # setuptools' own scratch space, inside CMake's tree rather than in the checkout.
    options={"build": {"build_base": str(BUILD / "setuptools")},
             "egg_info": {"egg_base": str(BUILD / "setuptools")}},
    zip_safe=False,
)
