"""Which sockets a set of processes holds to addresses other than this machine's
loopback: the check behind "the service makes no outbound request".

Ray binds some servers on the node's interface address as well as loopback, so
a socket to this machine's own address is local too; anything else is not."""
from __future__ import annotations

import ipaddress
import socket

import psutil


def cluster_processes(head_pid: int) -> list[psutil.Process]:
    """A Ray head's ``ray start`` process and everything it started (GCS, raylet,
    workers, Serve's controller, proxy and replicas)."""
    try:
        head = psutil.Process(head_pid)
        return [head, *head.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def local_addresses() -> set[str]:
    """Every address of this machine's own interfaces (a socket to one of them never leaves it)."""
    return {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family in (socket.AF_INET, socket.AF_INET6)}


def is_local(ip: str, own: set[str]) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:  # ::ffff:127.0.0.1
        address = address.ipv4_mapped
    return address.is_loopback or str(address) in own


def outbound(processes: list[psutil.Process]) -> list[str]:
    """'pid name -> address:port' for every inet socket whose remote end is not this machine."""
    own = local_addresses()
    found = []
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
            name = process.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for c in connections:
            if c.raddr and not is_local(c.raddr.ip, own):
                found.append(f"{process.pid} {name} -> {c.raddr.ip}:{c.raddr.port} ({c.status})")
    return found
