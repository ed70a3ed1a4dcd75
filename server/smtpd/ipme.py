"""This host's IPv4 addresses, as ipme.c finds them (an edge module: it asks the OS).

qmail-smtpd uses them to turn ``box@[d.d.d.d]`` into ``box@localiphost``.
ipme.c lists every interface that is up (SIOCGIFCONF/SIOCGIFFLAGS) and
always adds 0.0.0.0 ("this host", RFC 1122 3.2.1.3a). On Linux we ask the
same ioctls per interface name; elsewhere, or if that fails, we fall back to
0.0.0.0 and 127.0.0.1.
"""

from __future__ import annotations

import functools
import socket
import struct

from server.runtime import Runtime
from server.smtpd.address import IPv4

_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_IFF_UP = 0x1
_FALLBACK: frozenset[IPv4] = frozenset({(0, 0, 0, 0), (127, 0, 0, 1)})


def _interface_ip(sock: socket.socket, name: str) -> IPv4 | None:
    import fcntl  # Unix only, hence imported here

    req = struct.pack("256s", name.encode()[:15])
    try:
        flags = struct.unpack_from("H", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, req), 16)[0]
        if not flags & _IFF_UP:
            return None
        addr = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, req)[20:24]
    except OSError:
        return None
    return (addr[0], addr[1], addr[2], addr[3])


def for_runtime(runtime: Runtime) -> frozenset[IPv4]:
    """The runtime's addresses when it names them (the simulator), else the OS's."""
    return runtime.ipme if runtime.ipme is not None else local_ips()


@functools.cache
def local_ips() -> frozenset[IPv4]:
    """ipme_init(): 0.0.0.0 plus the address of every interface that is up."""
    found: set[IPv4] = {(0, 0, 0, 0)}
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _, name in socket.if_nameindex():
                ip = _interface_ip(sock, name)
                if ip is not None:
                    found.add(ip)
    except (OSError, ImportError):
        return _FALLBACK
    return frozenset(found)
