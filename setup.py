"""The one thing pyproject.toml cannot say: osipc's optional C part.

osipc/_ringc.c runs the shm:// and sysv+shm:// queue rings' uncontended send and receive
paths (several times faster than the same steps in Python). It is optional: where no C
compiler is available the build says so and goes on, and osipc runs the same rings in
pure Python (osipc.ring_accelerated() tells which).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("osipc._ringc", ["osipc/_ringc.c"], optional=True)])
