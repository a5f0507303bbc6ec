"""Finding a child playbook (`tool: playbook`) by name among the YAML files of a directory.

A name is looked up first as a file name (`greet` -> `greet.yaml` or `greet.yml`), then as the
`metadata.name` of a playbook in the directory. The second way reads every file, so it is done
once per resolver (one run, or one `noetl validate`): the first miss builds an index of the
directory's playbooks by name. Playbooks are loaded once per resolver too, so a loop that starts
the same child a hundred times reads its file once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from noetl.playbook import Playbook, PlaybookInvalid, load_playbook

PlaybookResolver = Callable[[str], Playbook]
"""Finds a child playbook by name (raises PlaybookInvalid or LookupError when it cannot)."""


class DirectoryResolver:
    """Resolves child playbooks from one directory; call it with the name to find."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._loaded: dict[str, Playbook] = {}
        self._by_name: dict[str, Playbook] | None = None

    def __call__(self, name: str) -> Playbook:
        if name not in self._loaded:
            self._loaded[name] = self._find(name)
        return self._loaded[name]

    def _find(self, name: str) -> Playbook:
        if Path(name).name != name or name.startswith("."):
            # A name is never a path: `../x` must not reach outside the directory.
            raise LookupError(f"no playbook named {name!r}: a name is not a path")
        for suffix in (".yaml", ".yml"):
            candidate = self.directory / f"{name}{suffix}"
            if candidate.is_file():
                return load_playbook(candidate)
        found = self._index().get(name)
        if found is None:
            raise LookupError(f"no playbook named {name!r} in {self.directory}")
        return found

    def _index(self) -> dict[str, Playbook]:
        if self._by_name is None:
            self._by_name = {}
            files = sorted([*self.directory.glob("*.yaml"), *self.directory.glob("*.yml")])
            for path in files:
                try:
                    playbook = load_playbook(path)
                except PlaybookInvalid:
                    continue  # not a playbook, or a broken one: it cannot be the one asked for
                self._by_name.setdefault(playbook.name, playbook)
        return self._by_name


def playbook_directory_resolver(directory: Path) -> PlaybookResolver:
    """A resolver for the playbooks of `directory` (a run's or a validation's own)."""
    return DirectoryResolver(directory)
