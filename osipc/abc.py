"""The surface for transport authors: subclass Sender, Receiver and Transport, declare
options as a CommonOptions dataclass, register in the ``osipc.transports`` entry-point
group, and prove the result with ``osipc.testing.check_transport``."""

from osipc._abc import Capabilities, Frame, Handle, ObjectInfo, Receiver, Sender, Transport
from osipc._address import (
    Address,
    CommonOptions,
    option,
    parse_bool,
    parse_choice,
    parse_int,
    parse_mode,
    runtime_dir,
    validate_name,
)
from osipc._codecs import Buffer, Codec
from osipc._deadline import Backoff, Deadline
from osipc._errors import map_os_error, os_errors

__all__ = [
    "Address",
    "Backoff",
    "Buffer",
    "Capabilities",
    "Codec",
    "CommonOptions",
    "Deadline",
    "Frame",
    "Handle",
    "ObjectInfo",
    "Receiver",
    "Sender",
    "Transport",
    "map_os_error",
    "option",
    "os_errors",
    "parse_bool",
    "parse_choice",
    "parse_int",
    "parse_mode",
    "runtime_dir",
    "validate_name",
]
