"""deploy/Dockerfile read as a builder reads it: stages of instructions, with ARG defaults and ENV values.

Enough of the Dockerfile syntax for the tests to run the image's own commands outside a
builder and to check what the image is (its user, its command, its environment), without
restating any of it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [text for name, text in self.instructions if name == instruction]

    def last(self, instruction: str) -> str:
        return self.all(instruction)[-1]

    def args(self) -> dict[str, str]:
        """ARG defaults (``ARG NAME=value``; an ARG without one is "")."""
        return dict(_assignment(text) for text in self.all("ARG"))

    def env(self) -> dict[str, str]:
        """ENV values, as written (``$VAR`` references unexpanded)."""
        return {k: v for text in self.all("ENV") for k, v in (_assignment(p) for p in shlex.split(text))}

    def run(self, containing: str) -> str:
        """The one RUN command holding ``containing``, as the shell gets it."""
        (command,) = [text for text in self.all("RUN") if containing in text]
        return command

    def command(self) -> list[str]:
        return json.loads(self.last("CMD"))


def stages(dockerfile: Path) -> list[Stage]:
    found: list[Stage] = []
    for name, text in _instructions(dockerfile.read_text()):
        if name == "FROM":
            found.append(Stage(text.split(" AS ")[-1] if " AS " in text else str(len(found))))
        elif found:
            found[-1].instructions.append((name, text))
    return found


def _instructions(source: str) -> list[tuple[str, str]]:
    joined, pending = [], ""
    for line in source.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        pending += line.rstrip().removesuffix("\\") + (" " if line.rstrip().endswith("\\") else "")
        if not line.rstrip().endswith("\\"):
            joined.append(pending)
            pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in joined]


def _assignment(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    return name.strip(), value.strip().strip('"')
