"""The one thing pyproject.toml cannot say: osipc's optional C parts.

osipc/_ringc.c runs the shm:// and sysv+shm:// queue rings' uncontended send and receive
paths; osipc/_msgc.c sends and receives one mq:// or sysv+mq:// message without waiting,
and writes a small fifo:// message as one frame.
Both are optional: where no C compiler is available the build says so and goes on, and
osipc runs the same paths in pure Python, several times slower (`osipc doctor` tells).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("osipc._ringc", ["osipc/_ringc.c"], optional=True),
        Extension("osipc._msgc", ["osipc/_msgc.c"], optional=True),
    ]
)
