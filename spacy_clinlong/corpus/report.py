"""What a conversion did: counts per kind and skips per reason, with locations.

Every converter writes into one `ConversionReport`. A problem is recorded with
its file, its line (or a JSON path where a line is not known) and a reason
code; never with the text of the note, so the summary can be printed and
logged safely.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

# Shown in the summary; the rest are counted but not listed one by one.
MAX_LISTED = 20


@dataclass
class Problem:
    """One skipped or adjusted item.

    file (str): The file it came from.
    line (Optional[int]): 1-based line number, when known.
    reason (str): A reason code, e.g. "text_mismatch".
    where (str): Ids, offsets or a JSON path. Never note text.
    """

    file: str
    line: Optional[int]
    reason: str
    where: str = ""

    def __str__(self) -> str:
        loc = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{loc}: {self.reason}" + (f" ({self.where})" if self.where else "")


@dataclass
class ConversionReport:
    """Counts of what was converted and what was skipped, per reason.

    counts (Counter): Converted items per kind ("docs", "entities", ...).
    skipped (Counter): Skipped items per reason code.
    problems (List[Problem]): Every skip, with its location.
    """

    counts: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    problems: List[Problem] = field(default_factory=list)

    def count(self, kind: str, n: int = 1) -> None:
        """Add to a converted-items counter.

        kind (str): What was counted, e.g. "docs".
        n (int): How many.
        """
        self.counts[kind] += n

    def skip(self, reason: str, file: Union[str, Path], line: Optional[int] = None, where: str = "") -> None:
        """Record a skipped item.

        reason (str): Reason code.
        file (Union[str, Path]): The file; only its name is kept.
        line (Optional[int]): 1-based line number, when known.
        where (str): Ids, offsets or a JSON path. Never note text.
        """
        self.skipped[reason] += 1
        self.problems.append(Problem(Path(file).name, line, reason, where))

    @property
    def n_docs(self) -> int:
        """RETURNS (int): The number of documents converted."""
        return self.counts["docs"]

    def to_dict(self) -> Dict[str, Any]:
        """RETURNS (Dict[str, Any]): Counts, skips and problems, JSON-serializable."""
        return {
            "counts": dict(self.counts),
            "skipped": dict(self.skipped),
            "problems": [vars(p) for p in self.problems],
        }

    def summary(self, max_listed: int = MAX_LISTED) -> str:
        """A printable summary: counts, skips per reason and the first problems.

        max_listed (int): How many problems to list with their locations.
        RETURNS (str): The summary, without any note text.
        """
        lines = ["Converted: " + (", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "nothing")]
        total = sum(self.skipped.values())
        if total:
            lines.append(
                f"Skipped: {total} (" + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) + ")"
            )
            for problem in self.problems[:max_listed]:
                lines.append(f"  {problem}")
            if len(self.problems) > max_listed:
                lines.append(f"  ... and {len(self.problems) - max_listed} more")
        else:
            lines.append("Skipped: 0")
        return "\n".join(lines)
