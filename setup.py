"""Only the optional C kernel lives here; everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("gis_grid._cellkernel", ["gis_grid/_cellkernel.c"],
                             extra_compile_args=["-O2", "-fno-fast-math"], optional=True)])
