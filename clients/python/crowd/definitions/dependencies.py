"""Which attributes enrichments read, dependency cycles, and the enrichment execution order.

An enrichment *reads* attribute X when X appears in its rule (as input or value), in its
operands or in its ``capture`` list; ``<tally>.favorite`` reads the tally. Built-in
attributes are maintained by the engine before enrichments run, so reading them creates no
dependency. An enrichment reading its own attribute (e.g. "increment while below 100")
depends on nothing for that read.

Order (Tealium §3.3, "rule dependency checking" + "UI order"): an enrichment runs after every
enrichment of each other attribute it reads; enrichments of one attribute keep their document
order; otherwise document order. The validator rejects cycles; `execution_order` never fails.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from crowd.definitions.builtins import AttributeSource, resolve_attribute
from crowd.profile.v1 import definitions_pb2 as pb


def operand_reads(operand: pb.Operand) -> Iterator[str]:
    """Attribute ids an operand reads (as written)."""
    if operand.WhichOneof("source") == "attribute":
        yield operand.attribute


def condition_reads(condition: pb.Condition) -> Iterator[str]:
    """Attribute ids a condition reads (its input and its value)."""
    if condition.HasField("input"):
        yield from operand_reads(condition.input)
    if condition.HasField("value"):
        yield from operand_reads(condition.value)


def rule_reads(rule: pb.Rule) -> Iterator[str]:
    """Attribute ids a rule reads."""
    for group in rule.groups:
        for condition in group.conditions:
            yield from condition_reads(condition)


def enrichment_reads(enrichment: pb.Enrichment) -> Iterator[str]:
    """Attribute ids an enrichment reads: rule, operands, captured attributes."""
    if enrichment.HasField("rule"):
        yield from rule_reads(enrichment.rule)
    for operand in enrichment.operands:
        yield from operand_reads(operand)
    yield from enrichment.capture


def enrichment_dependencies(
    enrichment: pb.Enrichment, defined: Mapping[str, pb.AttributeDefinition]
) -> list[str]:
    """The defined attributes whose enrichments must run before this enrichment.

    Favourites resolve to their tally; built-in and unknown ids are left out. In first-read
    order, without duplicates (the enrichment's own attribute included if it reads it).
    """
    out: dict[str, None] = {}
    for attribute_id in enrichment_reads(enrichment):
        ref = resolve_attribute(attribute_id, defined)
        if ref is not None and ref.source is not AttributeSource.BUILTIN:
            out[ref.target] = None
    return list(out)


@dataclass(frozen=True, slots=True)
class DependencyEdge:
    """``reader``'s enrichment at ``path`` reads ``read`` (an id of attribute ``target``)."""

    reader: str
    path: str
    read: str
    target: str


@dataclass(frozen=True, slots=True)
class DependencyCycle:
    """Attributes whose enrichments read each other in a cycle, e.g. a -> b -> a."""

    edges: tuple[DependencyEdge, ...]

    @property
    def attributes(self) -> list[str]:
        """``["a", "b", "a"]`` for a -> b -> a."""
        return [edge.reader for edge in self.edges] + [self.edges[0].reader]


def _attribute_index(definitions: pb.Definitions) -> dict[str, pb.AttributeDefinition]:
    index: dict[str, pb.AttributeDefinition] = {}
    for attribute in definitions.attributes:
        index.setdefault(attribute.id, attribute)
    return index


def _edges(definitions: pb.Definitions) -> dict[str, dict[str, DependencyEdge]]:
    """reader id -> target id -> the first enrichment creating that edge (self-reads dropped)."""
    defined = _attribute_index(definitions)
    graph: dict[str, dict[str, DependencyEdge]] = {}
    for i, attribute in enumerate(definitions.attributes):
        if not attribute.id or defined.get(attribute.id) is not attribute:
            continue  # unnamed or duplicate: reported by the validator
        targets = graph.setdefault(attribute.id, {})
        for j, enrichment in enumerate(attribute.enrichments):
            for read in enrichment_reads(enrichment):
                ref = resolve_attribute(read, defined)
                if ref is None or ref.source is AttributeSource.BUILTIN:
                    continue
                if ref.target != attribute.id and ref.target not in targets:
                    path = f"attributes[{i}].enrichments[{j}]"
                    targets[ref.target] = DependencyEdge(attribute.id, path, read, ref.target)
    return graph


def find_cycles(definitions: pb.Definitions) -> list[DependencyCycle]:
    """One cycle per group of attributes whose enrichments depend on each other.

    Each cycle starts at the group's first attribute in document order and is a shortest
    way back to it.
    """
    graph = _edges(definitions)
    order = {attribute_id: n for n, attribute_id in enumerate(graph)}
    cycles = []
    for component in _strongly_connected(graph):
        if len(component) < 2:
            continue
        members = set(component)
        start = min(component, key=order.__getitem__)
        cycles.append(DependencyCycle(tuple(_shortest_cycle(graph, start, members))))
    cycles.sort(key=lambda cycle: order[cycle.edges[0].reader])
    return cycles


def _shortest_cycle(
    graph: Mapping[str, Mapping[str, DependencyEdge]], start: str, members: set[str]
) -> list[DependencyEdge]:
    """Breadth-first from ``start`` back to ``start`` inside one strongly connected group."""
    came_from: dict[str, DependencyEdge] = {}
    frontier = [start]
    while frontier:
        next_frontier = []
        for node in frontier:
            for target, edge in graph.get(node, {}).items():
                if target not in members:
                    continue
                if target == start:
                    path = [edge]
                    while path[0].reader != start:
                        path.insert(0, came_from[path[0].reader])
                    return path
                if target not in came_from:
                    came_from[target] = edge
                    next_frontier.append(target)
        frontier = next_frontier
    raise AssertionError("a strongly connected group always has a cycle")  # pragma: no cover


def _strongly_connected(graph: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (documents may hold hundreds of attributes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(graph.get(root, {})))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def execution_order(definitions: pb.Definitions) -> list[tuple[int, int]]:
    """Every enrichment as ``(attribute index, enrichment index)``, in execution order.

    A stable topological sort: whenever several enrichments may run next, the one earliest
    in the document goes first. If the document has a cycle (invalid), the enrichments
    caught in it follow in document order.
    """
    defined = _attribute_index(definitions)
    slots: list[tuple[int, int]] = []
    writers: dict[str, list[int]] = {}
    for i, attribute in enumerate(definitions.attributes):
        for j in range(len(attribute.enrichments)):
            writers.setdefault(attribute.id, []).append(len(slots))
            slots.append((i, j))

    successors: list[list[int]] = [[] for _ in slots]
    pending = [0] * len(slots)

    def must_precede(before: int, after: int) -> None:
        successors[before].append(after)
        pending[after] += 1

    for n, (i, j) in enumerate(slots):
        attribute = definitions.attributes[i]
        if j > 0:
            must_precede(n - 1, n)  # one attribute's enrichments keep their order
        for target in enrichment_dependencies(attribute.enrichments[j], defined):
            if target != attribute.id:
                for writer in writers.get(target, ()):
                    must_precede(writer, n)

    ready = [n for n in range(len(slots)) if pending[n] == 0]
    heapq.heapify(ready)
    ordered: list[int] = []
    while ready:
        n = heapq.heappop(ready)
        ordered.append(n)
        for after in successors[n]:
            pending[after] -= 1
            if pending[after] == 0:
                heapq.heappush(ready, after)
    if len(ordered) < len(slots):
        placed = set(ordered)
        ordered.extend(n for n in range(len(slots)) if n not in placed)
    return [slots[n] for n in ordered]


def describe_cycle(cycle: DependencyCycle) -> str:
    """A sentence naming the attributes of the cycle and the enrichments creating it."""
    parts = [f'"{edge.reader}" reads "{edge.read}" ({edge.path})' for edge in cycle.edges]
    chain = " -> ".join(f'"{a}"' for a in cycle.attributes)
    return f"enrichments depend on each other in a cycle {chain}: " + ", ".join(parts)
