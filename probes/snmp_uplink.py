"""A camera's uplink: the switch port it hangs off, seen from the camera.

A device's ``uplink: {device: SWITCH, port: "ge1/0/3"}`` names a port of a switch the
daemon polls over SNMP.  Every SNMP observation of that switch is turned here into
one observation for the camera, check ``uplink``, with the port's values under
camera-side names the rules can read:

===============================  =========================================================
``snmp.uplink.oper_up``          IF-MIB ifOperStatus of the port, 1/0
``snmp.uplink.admin_up``         ifAdminStatus, 1/0
``snmp.uplink.poe_delivering``   PoE detection status is deliveringPower, 1/0
``snmp.uplink.poe_fault``        PoE detection status is fault/otherFault, 1/0
``snmp.uplink.poe_lost``         the port delivered power before and does not now, 1/0
                                 (the switch's ``snmp.poe.lost`` row of that port)
``snmp.uplink.poe_watts``        the power the device draws from the port (Cisco, H3C,
                                 Huawei PoE MIBs), where the switch reports it
===============================  =========================================================

Status: ``degraded`` (with the reason) when the port is down or its PoE is lost or in
fault, ``ok`` otherwise, ``unknown`` when the switch's answer has no such port.  A
switch that could not be read gives the camera nothing (its uplink faults stay as
they are; the switch's own faults say why).

The port is matched by ifName (label ``port``) or, if ``port`` is all digits, by
ifIndex.  The PoE row is the switch's row of that ifIndex where its PoE MIB is indexed
by interface (Huawei's ``snmp.poe_if``); else (``port_index`` = group.port, RFC 3621)
``poe_port`` when given, else the one row whose port number equals the ifIndex (true on
most single-unit switches; stacks need ``poe_port``).

Without ``port`` the port is *learned* from the switch's topology values (profile
``topology``): the LLDP neighbour whose management address is the device's host, or
whose chassis ID is the device's ``mac``; else the forwarding table's row of that MAC
(BRIDGE-MIB or Q-BRIDGE-MIB, bridge port → ifIndex).  The camera's observation then
also carries ``snmp.uplink.port`` (text: the port found) and ``snmp.uplink.found_by``
("lldp" or "fdb").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from elvwatch.probes import labelled
from elvwatch.probes.base import Observation, Status, Value

CHECK = "uplink"
_IF_NAMES = {"snmp.if.oper_up": "oper_up", "snmp.if.admin_up": "admin_up"}
_POE_NAMES = {"delivering": "poe_delivering", "fault": "poe_fault", "lost": "poe_lost",
              "power_watts": "poe_watts"}


@dataclass(frozen=True, slots=True)
class Uplink:
    device: str  # the camera
    switch: str
    port: str | None  # ifName, or ifIndex digits; None: learn it
    poe_port: str | None = None  # pethPsePortGroupIndex.pethPsePortIndex
    host: str | None = None  # the camera's address (LLDP management address)
    mac: str | None = None  # the camera's MAC (LLDP chassis ID, forwarding table)


@dataclass(slots=True)
class _Port:
    ifindex: str
    values: dict[str, Value]


class UplinkMap:
    """Which cameras hang off which switch ports; ``derive`` turns a switch's SNMP
    observation into its cameras' ``uplink`` observations."""

    def __init__(self) -> None:
        self._by_switch: dict[str, list[Uplink]] = {}
        self._checks: set[tuple[str, str]] = set()

    def configure(self, links: Iterable[Uplink],
                  snmp_checks: Iterable[tuple[str, str]]) -> None:
        """``snmp_checks``: (switch, check name) of the switches' SNMP checks."""
        by_switch: dict[str, list[Uplink]] = {}
        for link in links:
            by_switch.setdefault(link.switch, []).append(link)
        self._by_switch = by_switch
        self._checks = {c for c in snmp_checks if c[0] in by_switch}

    def derive(self, obs: Observation) -> list[Observation]:
        # Never from a derived observation: chained uplinks must not recurse.
        if obs.check == CHECK or (obs.device, obs.check) not in self._checks:
            return []
        links = self._by_switch.get(obs.device, [])
        if not links or not obs.values:
            return []
        ports, poe = _index(obs.values)
        topology = Topology.of(obs.values) if any(k.port is None for k in links) else None
        return [_for_camera(link, obs, ports, poe, topology) for link in links]


def _index(values: Mapping[str, Value]) -> tuple[dict[str, _Port], dict[str, dict[str, Value]]]:
    """Interface rows by ifName and ifIndex; PoE rows by port_index, and those indexed
    by interface (``snmp.poe_if``) by "#ifIndex"."""
    ports: dict[str, _Port] = {}
    poe: dict[str, dict[str, Value]] = {}
    for key, value in values.items():
        if not key.startswith(("snmp.if.", "snmp.poe.", "snmp.poe_if.")):
            continue
        name, labels = labelled.split(key)
        family, _, column = name.rpartition(".")
        if name in _IF_NAMES and "ifindex" in labels:
            port = ports.setdefault(f"#{labels['ifindex']}", _Port(labels["ifindex"], {}))
            port.values[_IF_NAMES[name]] = value
            if labels.get("port"):
                ports[labels["port"]] = port
        elif column in _POE_NAMES and family == "snmp.poe" and "port_index" in labels:
            poe.setdefault(labels["port_index"], {})[_POE_NAMES[column]] = value
        elif column in _POE_NAMES and family == "snmp.poe_if" and "ifindex" in labels:
            poe.setdefault(f"#{labels['ifindex']}", {})[_POE_NAMES[column]] = value
    return ports, poe


def _poe_row(link: Uplink, port: _Port,
             poe: dict[str, dict[str, Value]]) -> dict[str, Value]:
    by_interface = poe.get(f"#{port.ifindex}")
    if by_interface is not None:
        return by_interface
    if link.poe_port is not None:
        return poe.get(link.poe_port, {})
    matches = [row for index, row in poe.items()
               if not index.startswith("#") and index.rsplit(".", 1)[-1] == port.ifindex]
    return matches[0] if len(matches) == 1 else {}


def _for_camera(link: Uplink, obs: Observation, ports: dict[str, _Port],
                poe: dict[str, dict[str, Value]], topology: Topology | None) -> Observation:
    learned: dict[str, Value] = {}
    port: _Port | None
    if link.port is None:
        found = topology.find(link, ports) if topology is not None else None
        if found is None:
            return Observation(
                link.device, CHECK, Status.UNKNOWN, time=obs.time,
                error=f"uplink {link.switch}: this device is in neither the switch's LLDP "
                      f"neighbours nor its forwarding table")
        key, how = found
        port = ports[key]
        learned = {"snmp.uplink.port": _port_name(port, ports), "snmp.uplink.found_by": how}
        where = f"{link.switch} port {learned['snmp.uplink.port']}"
    else:
        where = f"{link.switch} port {link.port}"
        port = ports.get(f"#{link.port}" if link.port.isdigit() else link.port)
    if port is None:
        return Observation(link.device, CHECK, Status.UNKNOWN, time=obs.time,
                           error=f"uplink {where}: the switch reports no such port")
    values: dict[str, Value] = {f"snmp.uplink.{k}": v for k, v in port.values.items()}
    values.update(learned)
    values.update({f"snmp.uplink.{k}": v for k, v in _poe_row(link, port, poe).items()})
    problems = [text for name, bad, text in (
        ("snmp.uplink.oper_up", 0, "port down"), ("snmp.uplink.poe_lost", 1, "PoE lost"),
        ("snmp.uplink.poe_fault", 1, "PoE fault")) if values.get(name) == bad]
    status = Status.DEGRADED if problems else Status.OK
    error = f"uplink {where}: {', '.join(problems)}" if problems else None
    return Observation(link.device, CHECK, status, values=values, error=error,
                       time=obs.time)



def _port_name(port: _Port, ports: Mapping[str, _Port]) -> str:
    names = [k for k, p in ports.items() if p is port and not k.startswith("#")]
    return names[0] if names else port.ifindex


def _mac(text: str) -> str | None:
    digits = "".join(ch for ch in text.lower() if ch in "0123456789abcdef")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2)) if len(digits) == 12 else None


@dataclass(slots=True)
class Topology:
    """Who the switch sees on which port: LLDP neighbours and the forwarding table."""

    by_address: dict[str, str]  # neighbour management address → LLDP local port number
    by_chassis: dict[str, str]  # neighbour chassis MAC → local port number
    local: dict[str, tuple[str, ...]]  # local port number → its LLDP port id, description
    fdb: dict[str, str]  # MAC → bridge port
    bridge: dict[str, str]  # bridge port → ifIndex

    @classmethod
    def of(cls, values: Mapping[str, Value]) -> Topology:
        topo = cls({}, {}, {}, {}, {})
        for key, value in values.items():
            if not key.startswith(("snmp.lldp", "snmp.fdb.", "snmp.qfdb.", "snmp.bridge_port.")):
                continue
            name, labels = labelled.split(key)
            text = str(value)
            index = labels.get("index", "")
            if name == "snmp.lldp_address.if_subtype":
                arcs = index.split(".")
                # lldpRemTimeMark.LocalPortNum.RemIndex.AddrSubtype.length.address…
                if len(arcs) == 9 and arcs[3] == "1" and arcs[4] == "4":
                    topo.by_address[".".join(arcs[5:])] = arcs[1]
            elif name == "snmp.lldp.chassis":
                mac, arcs = _mac(text), index.split(".")
                if mac and len(arcs) == 3:
                    topo.by_chassis[mac] = arcs[1]
            elif name in ("snmp.lldp_local.port", "snmp.lldp_local.description"):
                port = labels.get("local_port", "")
                topo.local[port] = (*topo.local.get(port, ()), text)
            elif name == "snmp.fdb.port":
                mac = _mac(labels.get("mac", ""))
                if mac:
                    topo.fdb[mac] = text
            elif name == "snmp.qfdb.port":
                mac = _mac(index.rpartition("/")[2])
                if mac:
                    topo.fdb.setdefault(mac, text)
            elif name == "snmp.bridge_port.ifindex":
                topo.bridge[labels.get("bridge_port", "")] = text
        return topo

    def _local_port(self, number: str, ports: Mapping[str, _Port]) -> str | None:
        for name in self.local.get(number, ()):
            if name in ports:
                return name
        return f"#{number}" if f"#{number}" in ports else None

    def find(self, link: Uplink, ports: Mapping[str, _Port]) -> tuple[str, str] | None:
        """(key into ``ports``, "lldp" or "fdb") of the device's port, or None."""
        mac = _mac(link.mac) if link.mac else None
        number = self.by_address.get(link.host or "") or (
            self.by_chassis.get(mac) if mac else None)
        if number is not None:
            key = self._local_port(number, ports)
            if key is not None:
                return key, "lldp"
        bridge_port = self.fdb.get(mac) if mac else None
        if bridge_port is not None:
            # Without dot1dBasePortIfIndex, bridge port numbers are taken as ifIndexes.
            ifindex = self.bridge.get(bridge_port, bridge_port)
            if f"#{ifindex}" in ports:
                return f"#{ifindex}", "fdb"
        return None
