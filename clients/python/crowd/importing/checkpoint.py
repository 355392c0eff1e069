"""The checkpoint of an import: the last line the server acknowledged, for this file content.

Written atomically (a temporary file renamed over) after every acknowledged chunk, so a
restarted import skips what was acknowledged; record ids make a replay of the rest harmless.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


def default_path(source: Path) -> Path:
    """Beside the input: ``FILE.checkpoint``."""
    return source.with_name(source.name + ".checkpoint")


@dataclass
class Checkpoint:
    """Where to resume an import of the file whose content hash is ``identity``."""

    path: Path
    identity: str
    line: int = 0

    @classmethod
    def open(cls, path: Path, identity: str) -> Checkpoint:
        """The saved checkpoint of this file, or a fresh one (a checkpoint of other content,
        or an unreadable one, starts over: dedup keeps that safe)."""
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls(path, identity)
        if not isinstance(saved, dict) or saved.get("file") != identity:
            return cls(path, identity)
        line = saved.get("line", 0)
        return cls(path, identity, line if isinstance(line, int) else 0)

    def advance(self, line: int) -> None:
        """Record that every row up to ``line`` is acknowledged."""
        self.line = line
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps({"file": self.identity, "line": line}), encoding="utf-8")
        os.replace(temporary, self.path)
