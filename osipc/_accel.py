"""osipc's optional C parts: built by setup.py where a C compiler is present.

``_ringc`` runs the queue rings' uncontended paths (shm://, sysv+shm://); ``_msgc`` sends
and receives one message without waiting on mq:// and sysv+mq://, and writes a small
fifo:// message as one frame. Each module that uses one keeps an equivalent pure-Python
path, taken where the part was not built or ``OSIPC_NO_ACCEL=1`` turns them off;
processes of either kind share the same objects.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

OFF = "turned off by OSIPC_NO_ACCEL"


def load(name: str) -> tuple[Any, str]:
    """(the C module ``osipc.NAME`` or None, "in use" or why not)."""
    if os.environ.get("OSIPC_NO_ACCEL", "") not in ("", "0"):
        return None, OFF
    try:
        return importlib.import_module(f"osipc.{name}"), "in use"
    except ImportError as exc:
        return None, f"not built ({exc}); reinstall osipc where a C compiler is present"
