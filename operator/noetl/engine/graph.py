"""The workflow as a graph, computed once per playbook: edges, predecessors and reachability.

The engine asks two questions of it on every event, so both are cheap: which steps a step has as
predecessors (to know whether it is a join), and whether a running step can still reach a waiting
join (answered from a topological order first, and memoised: the graph never changes). The
`finally` steps form a second graph beside the workflow's, begun at its roots.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

from noetl.playbook import Playbook
from noetl.playbook.validation import START, finally_roots


class Graph:
    def __init__(self, playbook: Playbook) -> None:
        self.successors: dict[str, list[str]] = {
            name: list(dict.fromkeys(t for entry in step.next for t in entry.targets()))
            for name, step in playbook.steps.items()
        }
        self.predecessors: dict[str, set[str]] = {name: set() for name in playbook.steps}
        for name, targets in self.successors.items():
            for target in targets:
                self.predecessors[target].add(name)
        self.finally_roots = finally_roots(playbook.spec.finally_)
        self.finally_steps = frozenset(step.step for step in playbook.spec.finally_)
        self.order = self._topological_order()
        self.reaches = lru_cache(maxsize=65536)(self._reaches)

    def is_join(self, step: str) -> bool:
        return len(self.predecessors[step]) > 1

    def _topological_order(self) -> dict[str, int]:
        # Validation guarantees an acyclic graph where every workflow step is reachable from
        # `start` and every finally step from a finally root.
        # The workflow's steps come first, then the finally steps.
        indegree = {name: len(preds) for name, preds in self.predecessors.items()}
        order: dict[str, int] = {}
        for roots in ([START], self.finally_roots):
            ready: deque[str] = deque(roots)
            while ready:
                name = ready.popleft()
                order[name] = len(order)
                for target in self.successors[name]:
                    indegree[target] -= 1
                    if indegree[target] == 0:
                        ready.append(target)
        return order

    def _reaches(self, source: str, target: str) -> bool:
        """Whether a path leads from `source` to `target` (a step does not reach itself)."""
        limit = self.order[target]
        seen, frontier = {source}, [source]
        while frontier:
            for successor in self.successors[frontier.pop()]:
                if successor == target:
                    return True
                if successor not in seen and self.order[successor] < limit:
                    seen.add(successor)
                    frontier.append(successor)
        return False
