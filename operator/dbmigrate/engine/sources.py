"""Where migrations come from: a folder, a ConfigMap's data, or inline entries in the spec.

Whatever the source, the result is the same ordered ``MigrationSet`` of ``Migration`` objects, each
with its version (the number in ``NNN_name.sql``), name, SQL and sha256 checksum. Bad input is
refused here with a message that says which file is wrong and how to fix it, before anything
touches a database.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# A file name, not SQL: the one place a regular expression is the right tool.
FILENAME_PATTERN = re.compile(r"^(?P<version>[0-9]+)_(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)\.sql$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class MigrationSourceError(ValueError):
    """The migration set is malformed: bad name, duplicate version, gap, unreadable file."""


def checksum_of(sql: str) -> str:
    """The sha256 (hex) of a migration's SQL as UTF-8; what the history table records."""
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Migration:
    """One migration file: its version, name and SQL."""

    version: int
    name: str
    filename: str
    sql: str
    checksum: str = field(default="")

    def __post_init__(self) -> None:
        if not self.checksum:
            object.__setattr__(self, "checksum", checksum_of(self.sql))


@dataclass(frozen=True)
class MigrationSet:
    """Migrations ordered by version, without duplicates."""

    migrations: tuple[Migration, ...]

    def __iter__(self) -> Iterator[Migration]:
        return iter(self.migrations)

    def __len__(self) -> int:
        return len(self.migrations)

    @property
    def versions(self) -> list[int]:
        """The versions in order."""
        return [m.version for m in self.migrations]

    @property
    def latest(self) -> int | None:
        """The highest version, or None for an empty set."""
        return self.migrations[-1].version if self.migrations else None

    def get(self, version: int) -> Migration | None:
        """The migration of that version, if the set has it."""
        return next((m for m in self.migrations if m.version == version), None)

    def up_to(self, target: int | None) -> MigrationSet:
        """The migrations with version <= target (all of them when target is None)."""
        if target is None:
            return self
        if self.get(target) is None:
            raise MigrationSourceError(
                f"target version {target} is not in the migration set "
                f"(versions: {', '.join(map(str, self.versions)) or 'none'})"
            )
        return MigrationSet(tuple(m for m in self.migrations if m.version <= target))

    def pending(self, applied: Iterable[int]) -> list[Migration]:
        """The migrations whose version is not among ``applied``, in order."""
        done = set(applied)
        return [m for m in self.migrations if m.version not in done]


def parse_filename(filename: str) -> tuple[int, str]:
    """Split ``NNN_name.sql`` into (version, name); refuse anything else."""
    match = FILENAME_PATTERN.match(filename)
    if not match:
        raise MigrationSourceError(
            f"bad migration file name {filename!r}: expected NNN_name.sql, a version number, an "
            "underscore, a name of letters, digits, '_', '-' or '.', and the .sql suffix "
            "(for example 005_add_performance_indexes.sql)"
        )
    return int(match["version"]), match["name"]


def build_set(migrations: Iterable[Migration], allow_gaps: bool = True) -> MigrationSet:
    """Order the migrations and refuse duplicate versions (and gaps unless allowed)."""
    ordered = sorted(migrations, key=lambda m: m.version)
    for before, after in itertools.pairwise(ordered):
        if before.version == after.version:
            raise MigrationSourceError(
                f"duplicate migration version {after.version}: {before.filename!r} and "
                f"{after.filename!r}; give one of them a new number"
            )
        if not allow_gaps and after.version != before.version + 1:
            raise MigrationSourceError(
                f"gap in migration versions: {before.filename!r} is followed by "
                f"{after.filename!r}; number them consecutively or allow gaps"
            )
    return MigrationSet(tuple(ordered))


def _refuse_empty_sql(filename: str, sql: str) -> None:
    if not sql.strip():
        raise MigrationSourceError(
            f"migration file {filename!r} is empty: an empty file would be recorded as an applied "
            "version that did nothing; write its SQL or remove the file"
        )


def load_mapping(
    files: Mapping[str, str], allow_gaps: bool = True, allow_empty: bool = False
) -> MigrationSet:
    """Load a ConfigMap-shaped mapping of file name to SQL. Keys not ending in .sql are refused,
    so are empty files and (unless ``allow_empty``) an empty mapping."""
    if not files and not allow_empty:
        raise MigrationSourceError("no migration files: the set is empty")
    migrations = []
    for filename, sql in files.items():
        version, name = parse_filename(filename)
        _refuse_empty_sql(filename, sql)
        migrations.append(Migration(version=version, name=name, filename=filename, sql=sql))
    return build_set(migrations, allow_gaps=allow_gaps)


def migration_paths(path: str | Path) -> list[Path]:
    """The ``*.sql`` entries of a migrations folder, by name; each must be a readable file.

    Every command that reads a folder (plan, apply, lint, the steps) goes through here, so they
    all accept and refuse the same folders. A ``.sql`` entry that is a dangling symlink, a folder
    or unreadable is refused with its name rather than skipped: skipping it would let later
    versions run first. Other files (a README, ConfigMap mount links) are ignored."""
    folder = Path(path)
    if not folder.is_dir():
        raise MigrationSourceError(f"migrations folder {str(folder)!r} does not exist")
    entries = sorted(e for e in folder.iterdir() if e.name.endswith(".sql"))
    for entry in entries:
        if not entry.is_file():
            what = "a dangling symlink" if entry.is_symlink() else "not a regular file"
            raise MigrationSourceError(
                f"cannot read migration {str(entry)!r}: it is {what}; fix or remove it"
            )
    return entries


def _read_file(entry: Path) -> str:
    try:
        return entry.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationSourceError(
            f"cannot read migration {str(entry)!r}: it is not UTF-8 ({exc.reason} at byte "
            f"{exc.start})"
        ) from exc
    except OSError as exc:
        raise MigrationSourceError(
            f"cannot read migration {str(entry)!r}: {exc.strerror or exc}"
        ) from exc


def load_directory(
    path: str | Path, allow_gaps: bool = True, allow_empty: bool = False
) -> MigrationSet:
    """Load every ``*.sql`` file of a folder (not recursive); see ``migration_paths``. A folder
    without any is refused unless ``allow_empty`` (an empty ConfigMap mount is a mistake)."""
    entries = migration_paths(path)
    if not entries and not allow_empty:
        raise MigrationSourceError(
            f"no migration files (NNN_name.sql) in {str(path)!r}; an empty set would apply "
            "nothing and report success"
        )
    files = {entry.name: _read_file(entry) for entry in entries}
    return load_mapping(files, allow_gaps=allow_gaps, allow_empty=allow_empty)


def _inline_entry(index: int, entry: Mapping[str, object]) -> Migration:
    name, sql, version = entry.get("name"), entry.get("sql"), entry.get("version")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise MigrationSourceError(
            f"inline migration #{index + 1}: name must be letters, digits, '_', '-' or '.', "
            f"got {name!r}"
        )
    if not isinstance(sql, str) or not sql.strip():
        raise MigrationSourceError(f"inline migration #{index + 1} ({name}): sql is empty")
    if version is None:
        version = index + 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise MigrationSourceError(
            f"inline migration #{index + 1} ({name}): version must be a non-negative integer, "
            f"got {version!r}"
        )
    filename = f"{version:03d}_{name}.sql"
    return Migration(version=version, name=name, filename=filename, sql=sql)


def load_inline(entries: Sequence[Mapping[str, object]], allow_gaps: bool = True) -> MigrationSet:
    """Load inline entries ``{version?, name, sql}``; a missing version is the entry's position."""
    migrations = [_inline_entry(i, entry) for i, entry in enumerate(entries)]
    return build_set(migrations, allow_gaps=allow_gaps)
