"""RFI/RFQ workspace: parse shared requirements, search the answer library, compliance matrix."""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

COMPLIANCE: Final = ("compliant", "partial", "no")
MAX_REQUIREMENTS: Final = 500
MAX_REQUIREMENT_CHARS: Final = 2000
_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\(?[0-9]{1,4}[.)]|\(?[a-zA-Z][.)])\s+")
_WORD = re.compile(r"[a-z0-9]+")
# Words every requirement uses; they would make every answer look relevant.
_STOP: Final = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "in",
        "is",
        "it",
        "its",
        "must",
        "of",
        "on",
        "or",
        "shall",
        "should",
        "support",
        "supports",
        "the",
        "their",
        "this",
        "to",
        "vendor",
        "what",
        "which",
        "will",
        "with",
        "you",
        "your",
    ]
)


class RfxError(ValueError):
    """Reject a bad requirements list or answer; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def parse_requirements(text: str) -> list[str]:
    """Split pasted text or a CSV/plain-text upload into requirements, one per line or row.

    Bullets and numbering are stripped; blank lines dropped. A CSV whose header has a
    ``requirement`` column uses that column.
    """
    if "\x00" in text:  # an uploaded file's: PostgreSQL text cannot hold NUL
        raise RfxError("requirements", "must not contain NUL characters")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    header = lines[0].lower() if lines else ""
    if "requirement" in header and "," in header:
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        column = next(
            (f for f in (reader.fieldnames or []) if f.strip().lower() == "requirement"), None
        )
        if column is not None:
            try:
                items = [(row.get(column) or "").strip() for row in reader]
            except csv.Error as exc:  # e.g. a field past the csv module's 131,072 characters
                raise RfxError("requirements", f"line {reader.line_num + 1}: {exc}") from None
            return _checked([i for i in items if i])
    items = [_BULLET.sub("", line).strip() for line in lines]
    return _checked([i for i in items if i])


def _checked(items: list[str]) -> list[str]:
    if not items:
        raise RfxError("requirements", "no requirements found: paste one per line")
    if len(items) > MAX_REQUIREMENTS:
        raise RfxError("requirements", f"at most {MAX_REQUIREMENTS} requirements per document")
    for i, item in enumerate(items):
        if len(item) > MAX_REQUIREMENT_CHARS:
            raise RfxError(f"requirements[{i}]", f"longer than {MAX_REQUIREMENT_CHARS} characters")
    return items


def parse_compliance(raw: object, field: str = "compliance") -> str:
    """Parse a compliance value: compliant, partial or no."""
    if not isinstance(raw, str) or raw.strip().lower() not in COMPLIANCE:
        raise RfxError(field, f"must be one of {', '.join(COMPLIANCE)}")
    return raw.strip().lower()


def _tokens(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    # Cheap plural folding: "meters" and "meter" are the same requirement.
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _STOP]


@dataclass(frozen=True, slots=True)
class Answer:
    """A reusable answer from the library."""

    id: int
    question: str
    answer: str
    compliance: str


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A library answer that fits a requirement, with its similarity (0..1)."""

    answer: Answer
    score: float


def search(query: str, library: Sequence[Answer], limit: int = 5) -> list[Suggestion]:
    """Rank library answers by TF-IDF cosine similarity of their question and answer text."""
    q = Counter(_tokens(query))
    if not q or not library:
        return []
    docs = [Counter(_tokens(f"{a.question} {a.question} {a.answer}")) for a in library]
    n = len(docs)
    df: Counter[str] = Counter()
    for d in docs:
        df.update(d.keys())

    def idf(term: str) -> float:
        return math.log((1 + n) / (1 + df[term])) + 1.0

    def vec(c: Counter[str]) -> dict[str, float]:
        return {t: (1 + math.log(f)) * idf(t) for t, f in c.items()}

    qv = vec(q)
    qn = math.sqrt(sum(v * v for v in qv.values()))
    out = []
    for ans, d in zip(library, docs, strict=True):
        dv = vec(d)
        dot = sum(w * dv.get(t, 0.0) for t, w in qv.items())
        if dot <= 0:
            continue
        dn = math.sqrt(sum(v * v for v in dv.values()))
        out.append(Suggestion(ans, round(dot / (qn * dn), 4)))
    out.sort(key=lambda s: (-s.score, s.answer.id))
    return out[:limit]


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """One line of a compliance matrix."""

    number: int
    requirement: str
    answer: str
    compliance: str


MATRIX_HEADER: Final = ("#", "Requirement", "Answer", "Compliance")


def _cell(text: str) -> str:
    # A requirement pasted from a customer must not become a spreadsheet formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def matrix_csv(rows: Sequence[MatrixRow]) -> str:
    """Render a compliance matrix as CSV text."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(MATRIX_HEADER)
    for r in rows:
        writer.writerow(
            (r.number, _cell(r.requirement), _cell(r.answer), r.compliance or "unanswered")
        )
    return buf.getvalue()


def matrix_xlsx(rows: Sequence[MatrixRow], title: str) -> bytes:
    """Render a compliance matrix as an XLSX workbook."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.create_sheet("Compliance matrix", 0)
    for extra in wb.worksheets[1:]:
        wb.remove(extra)
    ws.append([title[:200]])
    ws["A1"].font = Font(bold=True, size=13)
    ws.append(list(MATRIX_HEADER))
    for cell in ws[2]:
        cell.font = Font(bold=True)
    for r in rows:
        ws.append([r.number, r.requirement, r.answer, r.compliance or "unanswered"])
    # Text typed by a customer or a distributor (the title too) stays text: openpyxl makes
    # any value starting with "=" a formula, so the cells are typed as strings outright
    # (no apostrophe, which a workbook would show, unlike a CSV reader).
    for cell in (ws["A1"], *ws["B"][2:], *ws["C"][2:]):
        if isinstance(cell.value, str):
            cell.data_type = "s"
    for col, width in zip("ABCD", (6, 60, 70, 14), strict=True):
        ws.column_dimensions[col].width = width
    for row in ws.iter_rows(min_row=3):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
