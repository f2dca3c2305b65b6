"""The ``depends_on`` graph, and which parent fault explains a child's fault.

Camera → PoE switch → core switch; door station → intercom server; everything → site
uplink or UPS.  A rule says the cause class of its faults (``cause: connectivity``) and
which cause classes a firing fault of it explains in the devices behind it
(``explains: [connectivity]``).  When a core switch is down, its cameras' "unreachable"
and "stream down" faults are explained by it: they get the switch fault as
``root_cause`` and the switch fault lists them in ``affected``, so one ticket opens.

A device's own faults explain each other the same way (an unreachable camera's
"stream down" is explained by its "unreachable"), so :meth:`Topology.explainers`
yields the device itself first, then its ancestors nearest first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence


class Topology:
    def __init__(self, depends_on: Mapping[str, Sequence[str]] | None = None) -> None:
        self.parents: dict[str, tuple[str, ...]] = {}
        self.children: dict[str, list[str]] = {}
        self._up: dict[str, tuple[str, ...]] = {}
        self._down: dict[str, tuple[str, ...]] = {}
        if depends_on:
            self.set(depends_on.items())

    def set(self, edges: Iterable[tuple[str, Sequence[str]]]) -> None:
        self.parents = {device: tuple(parents) for device, parents in edges}
        self.children = {}
        for device, parents in self.parents.items():
            for parent in parents:
                self.children.setdefault(parent, []).append(device)
        self._up.clear()
        self._down.clear()

    def ancestors(self, device: str) -> tuple[str, ...]:
        """Every device ``device`` depends on, directly or not, nearest first."""
        cached = self._up.get(device)
        if cached is None:
            cached = self._up[device] = _walk(device, self.parents)
        return cached

    def descendants(self, device: str) -> tuple[str, ...]:
        """Every device that depends on ``device``, directly or not, nearest first."""
        cached = self._down.get(device)
        if cached is None:
            cached = self._down[device] = _walk(device, self.children)
        return cached

    def explainers(self, device: str) -> tuple[str, ...]:
        """Where a fault's explanation may come from: the device, then its ancestors."""
        return (device, *self.ancestors(device))


def _walk(start: str, edges: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    # Breadth first, so nearer devices come first; the seen-set also makes a cycle
    # (rejected by the config, but possible through the API) terminate.
    seen = {start}
    order: list[str] = []
    queue = deque(edges.get(start, ()))
    while queue:
        node = queue.popleft()
        if node in seen:
            continue
        seen.add(node)
        order.append(node)
        queue.extend(edges.get(node, ()))
    return tuple(order)
