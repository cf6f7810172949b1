"""Read `config.toml`, every `queries/*.toml` (and the CSV files they import) and `alerts/*.toml`.

All problems across all files are collected, not just the first: `ConfigError.problems` holds one
`Problem` per error, printed as `file:line: field: what is wrong`, so one run of `listener check`
shows everything to fix. The result is a `Config`: the validated models plus the cross-file
links (a search's organisation, a route's receivers) already checked.
"""

from __future__ import annotations

import csv
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from listener.config.lines import KeyLines
from listener.config.model import (
    NO_BRANCH,
    AlertsFile,
    Branch,
    MainFile,
    Organisation,
    QueryFile,
    Receiver,
    Route,
    Search,
)
from listener.geo.areas import load_area
from listener.query.syntax import QuerySyntaxError, fields_of, parse
from listener.urgency.settings import UrgencySettings, default_data, default_settings, merge

#: Source names a search may list: the sources listener has and the names replayed posts carry.
KNOWN_SOURCES = frozenset(
    {"replay", "rss", "bluesky", "jetstream", "mastodon", "reddit", "x", "youtube", "webhook"}
)
CSV_COLUMNS = (
    "org_id",
    "org_name",
    "org_aliases",
    "branch_id",
    "branch_name",
    "street",
    "town",
    "lat",
    "lon",
    "radius_km",
)
#: The templates (in alerts/templates/) an email receiver needs: subject, text and HTML of an alert,
#: then of a digest. `listener.notify.email` loads them by these names; `load_config` reports a
#: missing one.
TEMPLATES = (
    "email_subject.txt.j2",
    "email.txt.j2",
    "email.html.j2",
    "digest_subject.txt.j2",
    "digest.txt.j2",
    "digest.html.j2",
)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Problem:
    file: Path
    line: int | None
    field: str
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = location(self.file, self.line, self.column)
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


def location(file: Path, line: int | None, column: int | None = None) -> str:
    """'file', 'file:line' or 'file:line:column', as editors and compilers print them."""
    where = f"{file}:{line}" if line else str(file)
    return f"{where}:{column}" if line and column else where


class ConfigError(Exception):
    """One or more problems in the configuration files."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Config:
    """Everything the daemon was told, validated and cross-checked."""

    path: Path
    main: MainFile
    organisations: dict[str, Organisation]
    searches: list[Search]
    receivers: dict[str, Receiver]
    routes: list[Route]
    files: list[Path] = field(default_factory=list)
    #: The receiver of alerts that no route matches (`default` in an alerts file), or None:
    #: those alerts are dropped.
    default_receiver: str | None = None
    #: Where each search is defined: its file and the line of its `id`.
    search_where: dict[str, tuple[Path, int | None]] = field(default_factory=dict)
    #: Labels, weights and levels of the urgency score: `urgency.toml` over the defaults.
    urgency: UrgencySettings = field(default_factory=default_settings)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, value: str | Path) -> Path:
        """A path from the config, relative to the config file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def queries_dir(self) -> Path:
        return self.resolve(self.main.queries_dir)

    @property
    def alerts_dir(self) -> Path:
        return self.resolve(self.main.alerts_dir)

    @property
    def templates_dir(self) -> Path:
        return self.alerts_dir / "templates"

    @property
    def database_url(self) -> str:
        """The database URL (`LISTENER_DATABASE` in the environment wins over the config file),
        with a relative SQLite path taken from the config's folder."""
        url = os.environ.get("LISTENER_DATABASE") or self.main.database
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve(url[len(prefix) :]))
        return url


def load_config(path: str | Path) -> Config:
    """Load and validate everything `path` points at; raise `ConfigError` listing every problem."""
    path = Path(path)
    problems: list[Problem] = []
    loaded_main = _load_model(path, MainFile, problems, keep_lines=True)
    if loaded_main is None:
        raise ConfigError(problems)
    main, main_lines = loaded_main
    config_dir = path.parent
    queries_dir = _dir(config_dir, main.queries_dir)
    alerts_dir = _dir(config_dir, main.alerts_dir)
    files: list[Path] = []
    urgency = default_settings()
    if main.urgency is not None:
        urgency_file = _dir(config_dir, main.urgency)
        files.append(urgency_file)
        urgency = _load_model(
            urgency_file, UrgencySettings, problems, prepare=lambda d: merge(default_data(), d)
        )

    organisations: dict[str, Organisation] = {}
    org_where: dict[str, tuple[Path, int | None]] = {}
    searches: list[Search] = []
    search_where: dict[str, tuple[Path, int | None]] = {}
    search_lines: dict[str, tuple[Path, int | None]] = {}
    for query_file in _toml_files(queries_dir, "queries_dir", path, problems):
        files.append(query_file)
        loaded = _load_model(query_file, QueryFile, problems, keep_lines=True)
        if loaded is None:
            continue
        model, lines = loaded
        for i, org in enumerate(model.organisations):
            line = lines.line_of(("organisations", i, "id"))
            _add_org(org, query_file, line, organisations, org_where, problems)
            for j, branch in enumerate(org.branches):
                if branch.area:
                    try:
                        load_area(branch.area, queries_dir)
                    except ValueError as exc:
                        line = lines.line_of(("organisations", i, "branches", j, "area"))
                        field = f"organisations[{org.id}].branches[{branch.id}].area"
                        problems.append(Problem(query_file, line, field, str(exc)))
        for i, csv_name in enumerate(model.import_csv):
            csv_path = _dir(query_file.parent, csv_name)
            line = lines.line_of(("import_csv", i))
            files.append(csv_path)
            for org, org_line in _load_csv(csv_path, query_file, line, problems):
                _add_org(org, csv_path, org_line, organisations, org_where, problems)
        for i, search in enumerate(model.searches):
            if search.id in search_where:
                first = search_where[search.id]
                line = lines.line_of(("searches", i, "id"))
                message = f"used before at {_at(first)}"
                problems.append(Problem(query_file, line, f"searches[{search.id}].id", message))
                continue
            search_where[search.id] = (query_file, lines.line_of(("searches", i, "org")))
            search_lines[search.id] = (query_file, lines.line_of(("searches", i, "id")))
            searches.append(search)
            _check_search(search, i, query_file, lines, problems)

    receivers: dict[str, Receiver] = {}
    routes: list[Route] = []
    route_where: list[tuple[Path, KeyLines, int]] = []
    route_ids: set[str] = set()
    default_receiver: str | None = None
    default_where: tuple[Path, int | None] | None = None
    for alerts_file in _toml_files(alerts_dir, "alerts_dir", path, problems):
        files.append(alerts_file)
        loaded = _load_model(alerts_file, AlertsFile, problems, keep_lines=True)
        if loaded is None:
            continue
        model, lines = loaded
        if model.default is not None:
            line = lines.line_of(("default",))
            if default_where is not None:
                message = (
                    f"a second default receiver ({model.default!r}; {default_receiver!r} was "
                    f"set at {_at(default_where)}): there is one default, in one alerts file"
                )
                problems.append(Problem(alerts_file, line, "default", message))
            else:
                default_receiver, default_where = model.default, (alerts_file, line)
        for i, receiver in enumerate(model.receivers):
            if receiver.id in receivers:
                line = lines.line_of(("receivers", i, "id"))
                problems.append(
                    Problem(alerts_file, line, f"receivers[{receiver.id}].id", "used twice")
                )
            receivers[receiver.id] = receiver
        for i, route in enumerate(model.routes):
            if route.id is None:  # digests and `listener check` name it by file and place
                route = route.model_copy(update={"id": f"{alerts_file.stem}-{i + 1}"})
            elif route.id in route_ids:
                line = lines.line_of(("routes", i, "id"))
                problems.append(Problem(alerts_file, line, f"routes[{i}].id", "used twice"))
            route_ids.add(route.id or "")
            routes.append(route)
            route_where.append((alerts_file, lines, i))

    # Cross-file links, now that every file is read.
    for search in searches:
        if search.org is not None and search.org not in organisations:
            file, line = search_where[search.id]
            problems.append(
                Problem(
                    file,
                    line,
                    f"searches[{search.id}].org",
                    _unknown("organisation", search.org, organisations),
                )
            )
    search_ids = {s.id for s in searches}
    label_names = set(type(urgency.labels).model_fields) if urgency is not None else set()
    for route, (file, lines, i) in zip(routes, route_where, strict=True):
        routed = [organisations[o] for o in route.orgs if o in organisations] or list(
            organisations.values()
        )
        branch_ids = {b.id for org in routed for b in org.branches} | {NO_BRANCH}
        for key, known, what in (
            ("receivers", receivers, "receiver"),
            ("escalate_to", receivers, "receiver"),
            ("orgs", organisations, "organisation"),
            ("branches", branch_ids, "branch"),
            ("searches", search_ids, "search"),
            ("labels", label_names, "label"),
            ("sources", KNOWN_SOURCES, "source"),
        ):
            if key == "labels" and urgency is None:
                continue  # urgency.toml did not load: its problems are listed already
            for j, name in enumerate(getattr(route, key)):
                if name not in known:
                    line = lines.line_of(("routes", i, key, j))
                    message = _unknown(what, name, known)
                    if key == "branches":
                        orgs = ", ".join(o.id for o in routed) or "none defined"
                        message = (
                            f"unknown branch {name!r} of organisation(s) {orgs} "
                            f"(known: {', '.join(sorted(branch_ids))}; '-' is no branch)"
                        )
                    problems.append(Problem(file, line, f"routes[{i}].{key}", message))
    if default_receiver is not None and default_receiver not in receivers:
        file, line = default_where or (alerts_dir, None)
        problems.append(
            Problem(file, line, "default", _unknown("receiver", default_receiver, receivers))
        )
    if any(r.type == "email" for r in receivers.values()):
        for name in TEMPLATES:
            if not (alerts_dir / "templates" / name).is_file():
                problems.append(
                    Problem(
                        alerts_dir / "templates" / name,
                        None,
                        "",
                        "template missing (an email receiver needs it)",
                    )
                )
    if main.report is not None:
        _check_report(main, path, main_lines, receivers, organisations, alerts_dir, problems)

    if problems:
        raise ConfigError(problems)
    return Config(
        path=path,
        main=main,
        organisations=organisations,
        searches=searches,
        receivers=receivers,
        routes=routes,
        files=files,
        default_receiver=default_receiver,
        search_where=search_lines,
        urgency=urgency,
    )


def _at(where: tuple[Path, int | None]) -> str:
    return f"{where[0]}:{where[1]}" if where[1] else str(where[0])


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    names = ", ".join(sorted(known)) or "none defined"
    return f"unknown {what} {name!r} (known: {names})"


def _dir(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _toml_files(folder: Path, key: str, config: Path, problems: list[Problem]) -> list[Path]:
    if not folder.is_dir():
        problems.append(Problem(config, None, key, f"folder {folder} does not exist"))
        return []
    return sorted(folder.glob("*.toml"))


def _load_model(
    path: Path,
    model: type[M],
    problems: list[Problem],
    *,
    keep_lines: bool = False,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Any:
    """Read, parse and validate one TOML file (`prepare` changes the data first: the urgency
    settings are merged over the defaults); None, with its problems added, when it fails."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(Problem(path, None, "", f"cannot read: {exc.strerror or exc}"))
        return None
    except UnicodeDecodeError as exc:
        problems.append(Problem(path, None, "", f"not UTF-8 text: {exc.reason}"))
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = int(found.group(1)) if found else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        column = f" (column {found.group(2)})" if found else ""
        problems.append(Problem(path, line, "", f"TOML syntax error: {message}{column}"))
        return None
    lines = KeyLines(text)
    if prepare is not None:
        data = prepare(data)
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems(path, lines, data, exc))
        return None
    return (validated, lines) if keep_lines else validated


def _problems(path: Path, lines: KeyLines, data: Any, exc: ValidationError) -> list[Problem]:
    out = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "required field missing"
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
        out.append(Problem(path, lines.line_of(loc), _field_name(loc, data), message))
    return out


def _field_name(loc: Sequence[str | int], data: Any) -> str:
    """`organisations[eemland].branches[vathorst].lat`: list items named by their id."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            label = item.get("id") if isinstance(item, dict) else None
            out += f"[{label}]" if isinstance(label, str) and label else f"[{part}]"
            node = item
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _add_org(
    org: Organisation,
    file: Path,
    line: int | None,
    organisations: dict[str, Organisation],
    where: dict[str, tuple[Path, int | None]],
    problems: list[Problem],
) -> None:
    """Add an organisation; the same id twice is allowed once: names in TOML, branches in CSV."""
    existing = organisations.get(org.id)
    if existing is None:
        organisations[org.id] = org
        where[org.id] = (file, line)
        return
    if existing.branches and org.branches:
        problems.append(
            Problem(
                file, line, f"organisations[{org.id}]", f"defined before at {_at(where[org.id])}"
            )
        )
        return
    organisations[org.id] = existing.model_copy(
        update={
            "aliases": list(dict.fromkeys([*existing.aliases, *org.aliases])),
            "handles": list(dict.fromkeys([*existing.handles, *org.handles])),
            "branches": existing.branches or org.branches,
            "hours": existing.hours or org.hours,  # the CSV has none: the TOML's count
        }
    )


def _check_search(
    search: Search, i: int, file: Path, lines: KeyLines, problems: list[Problem]
) -> None:
    for j, name in enumerate(search.sources):
        if name not in KNOWN_SOURCES:
            line = lines.line_of(("searches", i, "sources", j))
            message = _unknown("source", name, KNOWN_SOURCES)
            problems.append(Problem(file, line, f"searches[{search.id}].sources", message))
    if search.query is not None:
        key_line = lines.line_of(("searches", i, "query"))
        try:
            tree = parse(search.query)
        except QuerySyntaxError as exc:
            line, column = query_position(file, key_line, exc.query, exc.offset)
            problems.append(
                Problem(file, line, f"searches[{search.id}].query", exc.message, column)
            )
            return
        for node in fields_of(tree):
            if node.name == "source" and node.value not in KNOWN_SOURCES:
                line, column = query_position(file, key_line, search.query, node.start)
                message = _unknown("source", node.value, KNOWN_SOURCES)
                problems.append(
                    Problem(file, line, f"searches[{search.id}].query", message, column)
                )


def query_position(
    file: Path, key_line: int | None, query: str, offset: int
) -> tuple[int | None, int | None]:
    """The file line and column of an offset into a search's query (a syntax error, or a term
    `listener check` warns about). The query is found verbatim after its key (always so for
    'literal' and '''multi-line''' strings); failing that (escapes in a "basic" string), the
    key's line and the column inside the query."""
    if key_line is None:
        return None, None
    text = file.read_text(encoding="utf-8")
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    begin = starts[key_line - 1] if key_line - 1 < len(starts) else 0
    found = text.find(query, begin) if query else -1
    if found < 0:
        return key_line, offset - (query.rfind("\n", 0, offset) + 1) + 1
    offset = found + offset
    line = text.count("\n", 0, offset) + 1
    return line, offset - starts[line - 1] + 1


def _load_csv(
    path: Path, toml_file: Path, toml_line: int | None, problems: list[Problem]
) -> list[tuple[Organisation, int]]:
    """Organisations and branches from a CSV with the columns in `CSV_COLUMNS`."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        problems.append(
            Problem(toml_file, toml_line, "import_csv", f"cannot read {path}: {exc.strerror}")
        )
        return []
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            problems.append(Problem(path, 1, ", ".join(missing), "column missing"))
            return []
        extra = [c for c in header if c not in CSV_COLUMNS]
        if extra:
            problems.append(Problem(path, 1, ", ".join(extra), "unknown column"))
        orgs: dict[str, dict[str, Any]] = {}
        for row in reader:
            line = reader.line_num
            org_id = (row["org_id"] or "").strip()
            if not org_id:
                problems.append(Problem(path, line, "org_id", "required field missing"))
                continue
            org = orgs.setdefault(
                org_id,
                {
                    "id": org_id,
                    "name": (row["org_name"] or "").strip(),
                    "aliases": [
                        a.strip() for a in (row["org_aliases"] or "").split("|") if a.strip()
                    ],
                    "branches": [],
                    "line": line,
                },
            )
            name = (row["org_name"] or "").strip()
            if name and name != org["name"]:
                problems.append(
                    Problem(
                        path,
                        line,
                        "org_name",
                        f"{org_id!r} is named {org['name']!r} on line {org['line']}",
                    )
                )
            raw = {
                "id": (row["branch_id"] or "").strip(),
                "name": (row["branch_name"] or "").strip(),
                "address": (row["street"] or "").strip() or None,
                "town": (row["town"] or "").strip() or None,
                "lat": (row["lat"] or "").strip() or None,
                "lon": (row["lon"] or "").strip() or None,
                "radius_km": (row["radius_km"] or "").strip() or None,
            }
            raw = {k: v for k, v in raw.items() if v not in (None, "")}
            try:
                org["branches"].append(Branch.model_validate(raw))
            except ValidationError as exc:
                for error in exc.errors():
                    column = {"id": "branch_id", "name": "branch_name", "address": "street"}.get(
                        str(error["loc"][0]), str(error["loc"][0])
                    )
                    message = error["msg"].removeprefix("Value error, ")
                    if error["type"] == "missing":
                        message = "required field missing"
                    problems.append(Problem(path, line, column, message))
    out = []
    for raw_org in orgs.values():
        line = raw_org.pop("line")
        try:
            out.append((Organisation.model_validate(raw_org), line))
        except ValidationError as exc:
            for error in exc.errors():
                problems.append(
                    Problem(path, line, "org_id", error["msg"].removeprefix("Value error, "))
                )
    return out


REPORT_TEMPLATES = ("report_subject.txt.j2", "report.txt.j2", "report.html.j2")


def _check_report(
    main: MainFile,
    path: Path,
    lines: KeyLines,
    receivers: dict[str, Receiver],
    organisations: dict[str, Organisation],
    alerts_dir: Path,
    problems: list[Problem],
) -> None:
    """[report]: its receivers are email receivers of alerts/*.toml, which need [email]; its org
    is known; the weekly e-mail's templates are there."""
    report = main.report
    assert report is not None
    for i, name in enumerate(report.receivers):
        line = lines.line_of(("report", "receivers", i))
        receiver = receivers.get(name)
        if receiver is None:
            message = _unknown("receiver", name, (r.id for r in receivers.values()))
        elif receiver.type != "email":
            emails = [r.id for r in receivers.values() if r.type == "email"]
            message = (
                f"receiver {name!r} is a {receiver.type} receiver; the report goes by e-mail "
                f"(email receivers: {', '.join(emails) or 'none defined'})"
            )
        elif main.email is None:
            message = f"email receiver {name!r} cannot send: config.toml has no [email] section"
        else:
            continue
        problems.append(Problem(path, line, "report.receivers", message))
    if report.org is not None and report.org not in organisations:
        line = lines.line_of(("report", "org"))
        problems.append(
            Problem(path, line, "report.org", _unknown("organisation", report.org, organisations))
        )
    if report.weekly is not None:
        for name in REPORT_TEMPLATES:
            if not (alerts_dir / "templates" / name).is_file():
                problems.append(
                    Problem(
                        alerts_dir / "templates" / name,
                        None,
                        "",
                        "template missing ([report] weekly needs it)",
                    )
                )
