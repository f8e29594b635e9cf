"""Where a distributed search's processes meet, and how long they wait for each other.

Kept apart from ``distributed`` (the chief) because the CLI parses ``--chief``, ``--bind`` and the
timeouts before TensorFlow or Keras Tuner load: a wrong address, or an unsupported Keras Tuner
(``kt_compat.check_version``, run when the chief's module loads), must be a clear error at exit 2,
not an import-time traceback.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from fmnist_search.errors import UserError

LOOPBACK = "127.0.0.1"  # default: a chief listens on this host only (--bind), and ports are probed on it
HEARTBEAT_EVERY = 5.0  # seconds between a worker's heartbeats
HEARTBEAT_TIMEOUT = 120.0  # default: a remote worker silent this long is presumed dead
CHIEF_TIMEOUT = HEARTBEAT_TIMEOUT  # default: how long a worker waits for the chief's answer


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_address(text: str, option: str, default_port: int | None = None) -> Address:
    """``HOST:PORT``, ``[IPv6]:PORT``, or a bare host when a default port is given."""
    host, sep, port = text.rpartition(":")
    if not sep or (host.count(":") and not host.startswith("[")):
        host, port = text, "" if default_port is None else str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"{option} {text!r} is not an address: give HOST:PORT, for example "
                        "127.0.0.1:8470 or node1:8470 ([::1]:8470 for IPv6).")
    return Address(host, int(port))


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
