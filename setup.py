"""The package's metadata is in pyproject.toml; this file adds one build step: the kernels a
fresh install loads instead of compiling (fastmlp/cpu/ship.py), compiled into the build's
fastmlp/_kernels when the package is built (`pip install .`, `pip wheel .`, `python -m
build`). FASTMLP_SHIP_KERNELS=0 builds without them; a build that cannot compile them (a
machine without x86-64-v3, a failed compile) warns and goes on without them, since every
kernel still compiles on first use. Editable installs never ship kernels: their sources
change under them."""
import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithKernels(build_py):
    def run(self):
        super().run()
        if self.editable_mode or os.environ.get("FASTMLP_SHIP_KERNELS", "1") == "0":
            return
        out = os.path.join(os.path.abspath(self.build_lib), "fastmlp", "_kernels")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=os.pathsep.join(
                       p for p in (os.path.abspath(self.build_lib),
                                   os.environ.get("PYTHONPATH")) if p))
        # The build's copy of the package compiles, so the kernels match what is installed.
        done = subprocess.run([sys.executable, "-m", "fastmlp.cpu.ship", out], env=env,
                              cwd=self.build_lib)
        if done.returncode != 0:
            print("warning: fastmlp's kernels were not compiled ahead (see above); "
                  "they will compile on first use", file=sys.stderr)


setup(cmdclass={"build_py": BuildPyWithKernels})
