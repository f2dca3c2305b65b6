"""The equipment archive (设备档案) as spreadsheets: import CSV/XLSX, export CSV.

``import_devices(path)`` reads a spreadsheet whose first non-empty row is the header
(Chinese or English column names) and returns an :class:`ImportResult`: the devices as
plain dicts ready for :func:`devices_yaml`, one :class:`RowError` per problem found (row
numbers as Excel shows them), and warnings.  A bad row never stops the others.
``export_devices(config, out)`` writes the archive back as CSV that re-imports to the
same devices.  Problems with the file as a whole raise :class:`InventoryError`.

``system`` is left out of an imported device when it is what the device's built-in kind
implies, so an exported archive (which always fills the column in) round-trips.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import TextIO

import openpyxl  # type: ignore[import-untyped]
import yaml
from pydantic import ValidationError

from elvwatch.config.loading import builtin_kinds
from elvwatch.config.resolved import Config
from elvwatch.config.schema import DeviceConfig, Location

_Label = Callable[[str], str]  # archive field → its column header as written in the file

# Field → header names, compared after _norm (case, spaces, '_', '-', '*' ignored); an
# export writes the first (zh-CN) or the second (en), in this order of columns.
_HEADERS: dict[str, tuple[str, ...]] = {
    "id": ("设备编号", "ID", "编号", "device id"),
    "name": ("设备名称", "Name", "名称"),
    "site": ("站点", "Site", "小区", "项目"),
    "system": ("系统", "System", "子系统"),
    "kind": ("设备类型", "Kind", "类型", "type"),
    "vendor": ("品牌", "Vendor", "厂家", "厂商", "brand", "manufacturer"),
    "model": ("型号", "Model"),
    "serial": ("序列号", "Serial", "SN", "serial number"),
    "firmware": ("固件版本", "Firmware", "固件"),
    "host": ("IP地址", "Host", "IP", "地址", "IP address"),
    "building": ("楼栋", "Building"),
    "floor": ("楼层", "Floor"),
    "location": ("安装位置", "Location", "位置", "place"),
    "installed": ("安装日期", "Installed"),
    "warranty_until": ("保修期至", "Warranty until", "保修截止", "质保期至", "warranty"),
    "depends_on": ("依赖", "Depends on", "上级设备"),
    "tags": ("标签", "Tags"),
}
_LANGUAGES = {"zh-CN": 0, "en": 1}  # language → which header name an export writes

# Values of the system and kind columns; a zh-CN export writes the first name.
_SYSTEMS: dict[str, tuple[str, ...]] = {
    "cctv": ("视频监控", "监控", "视频", "CCTV", "video"),
    "access_control": ("门禁", "access control", "access"),
    "intercom": ("楼宇对讲", "对讲", "可视对讲", "intercom"),
    "alarm": ("防盗报警", "报警", "周界", "周界报警", "alarm"),
    "network": ("网络", "network"),
    "power": ("电源", "供电", "UPS", "power"),
}
_KINDS: dict[str, tuple[str, ...]] = {
    "camera": ("摄像机", "摄像头", "球机", "枪机", "半球", "网络摄像机", "IPC"),
    "nvr": ("硬盘录像机", "网络硬盘录像机", "录像机", "NVR"),
    "switch": ("交换机", "POE交换机"),
    "router": ("路由器",),
    "access_panel": ("门禁控制器", "access panel"),
    "door_station": ("单元门口机", "门口机", "door station"),
    "intercom_server": ("对讲服务器", "intercom server"),
    "alarm_panel": ("报警主机", "alarm panel"),
    "ups": ("UPS", "不间断电源"),
}


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-*]+", "", text).casefold()


def _lookup(table: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    return {_norm(name): key for key, names in table.items() for name in (key, *names)}


_FIELD_BY_HEADER = _lookup(_HEADERS)
_SYSTEM_BY_VALUE = _lookup(_SYSTEMS)
_KIND_BY_VALUE = _lookup(_KINDS)
_ID_PREFIX = {"camera": "cam", "switch": "sw", "router": "rt", "access_panel": "acp",
              "door_station": "ds", "intercom_server": "ics", "alarm_panel": "alarm"}

# Order of the keys of an imported device, which is the order they appear in the YAML.
_DEVICE_KEYS = ("id", "name", "site", "system", "kind", "host", "vendor", "model", "serial",
                "firmware", "location", "installed", "warranty_until", "depends_on", "tags")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
                   r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_LIST_SEPARATORS = re.compile(r"[,，;；、]")


class InventoryError(Exception):
    """The file as a whole cannot be imported (unreadable, wrong format, no header)."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in one row; ``row`` counts like Excel does (header row included)."""

    row: int
    column: str | None
    message: str

    def __str__(self) -> str:
        return f"row {self.row}" + (f", {self.column}" if self.column else "") \
            + f": {self.message}"


@dataclass(frozen=True)
class ImportResult:
    """Valid devices (dicts in YAML key order), problems per row, and file-level notes."""

    devices: list[dict[str, object]]
    errors: list[RowError]
    warnings: list[str]


def import_devices(path: Path, site: str | None = None, *,
                   progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Read the archive in ``path`` (.csv or .xlsx); ``site`` fills in empty site cells.
    ``progress(rows read, rows in the file)`` is called as the rows are read and parsed
    (most of the time, for an .xlsx above all) and ends with both equal."""
    with _open_rows(Path(path)) as (rows, total):
        header = next(((n, cells) for n, cells in rows if not _blank(cells)), None)
        if header is None:
            raise InventoryError(f"{path}: the file is empty (no header row)")
        columns, labels, warns = _map_header(header[1])
        if "host" not in columns and "name" not in columns:
            raise InventoryError(f"{path}: row {header[0]} is not a header naming the "
                                 "archive fields (e.g. 设备名称, IP地址, 设备类型)")

        def label(field: str) -> str:
            return labels.get({"place": "location"}.get(field, field), field)

        parsed: list[tuple[int, dict[str, object], list[RowError]]] = []
        last = header[0]
        for number, cells in rows:
            last = number
            if progress is not None:
                # An .xlsx's stored dimension can be short of its real last row.
                total = max(total or 0, number)
                progress(number, total)
            if _blank(cells):
                continue
            values = {f: cells[i] if i < len(cells) else None for f, i in columns.items()}
            device, errors = _parse_row(number, values, site, label)
            parsed.append((number, device, errors))
        if progress is not None:
            progress(last, last)

    first_row_of: dict[str, int] = {}
    for number, device, errors in parsed:
        if "id" in device:
            ident = str(device["id"])
            if ident in first_row_of:
                errors.append(RowError(number, label("id"), f"duplicate id {ident!r} "
                                                            f"(also row {first_row_of[ident]})"))
            else:
                first_row_of[ident] = number
    taken = set(first_row_of)
    for _, device, _ in parsed:
        if "id" not in device and (derived := _derive_id(device, taken)):
            device["id"] = derived
            taken.add(derived)

    kinds = builtin_kinds()
    result = ImportResult([], [], warns)
    unknown_kinds: set[str] = set()
    for number, device, errors in parsed:
        kind = device.get("kind")
        if kind in kinds and device.get("system") == kinds[str(kind)].system.value:
            del device["system"]
        try:
            DeviceConfig.model_validate(device)
        except ValidationError as exc:
            errors += _pydantic_errors(exc, number, errors, label)
        if errors:
            result.errors.extend(errors)
            continue
        result.devices.append({k: device[k] for k in _DEVICE_KEYS if k in device})
        if isinstance(kind, str) and kind not in kinds and kind not in unknown_kinds:
            unknown_kinds.add(kind)
            result.warnings.append(
                f"row {number}: kind {kind!r} is not built in; define it under 'kinds:' in "
                f"the config (built in: {', '.join(sorted(kinds))})")
    return result


def devices_yaml(devices: Iterable[Mapping[str, object]], source: str | None = None) -> str:
    """The devices as a config include file (``devices:`` only); dates stay ISO dates."""
    body = yaml.dump({"devices": [dict(d) for d in devices]}, Dumper=_IndentedDumper,
                     allow_unicode=True, sort_keys=False, default_flow_style=False, width=100)
    return (f"# Imported by elvwatch from {source}\n" if source else "") + body


def export_devices(config: Config, out: TextIO, language: str = "en") -> int:
    """Write every device's archive fields as CSV to ``out``; return the device count.

    Open files with ``newline=""`` (and ``encoding="utf-8-sig"`` so Excel reads Chinese).
    """
    if language not in _LANGUAGES:
        raise ValueError(f"unknown language {language!r} (known: {', '.join(_LANGUAGES)})")
    zh = language == "zh-CN"
    writer = csv.writer(out)
    writer.writerow(names[_LANGUAGES[language]] for names in _HEADERS.values())
    for device in config.devices.values():
        dev, loc = device.config, device.config.location or Location()
        values: dict[str, str | date | None] = {
            "id": dev.id, "name": dev.name, "site": dev.site,
            "system": _SYSTEMS[device.system.value][0] if zh else device.system.value,
            "kind": _KINDS[dev.kind][0] if zh and dev.kind in _KINDS else dev.kind,
            "vendor": dev.vendor, "model": dev.model, "serial": dev.serial,
            "firmware": dev.firmware, "host": dev.host, "building": loc.building,
            "floor": loc.floor, "location": loc.place, "installed": dev.installed,
            "warranty_until": dev.warranty_until, "depends_on": ", ".join(dev.depends_on),
            "tags": ", ".join(dev.tags),
        }
        writer.writerow("" if (v := values[f]) is None else
                        v.isoformat() if isinstance(v, date) else v for f in _HEADERS)
    return len(config.devices)


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key (``devices:\\n  - id: …``), as people write it."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


# ---------------------------------------------------------------------------- reading

@contextmanager
def _open_rows(path: Path) -> Iterator[tuple[Iterator[tuple[int, list[object]]], int | None]]:
    """(row number, cells) of the file as read, and how many rows it says it has (None
    when an .xlsx does not say)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            rows = _read_csv(path.read_bytes(), path)
            yield iter(rows), len(rows)
            return
        if suffix in (".xlsx", ".xlsm"):
            with _xlsx_rows(path) as opened:
                yield opened
            return
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    raise InventoryError(f"{path}: unsupported file type {suffix or '(none)'!r}; "
                         "save the sheet as .xlsx or .csv")


def _read_csv(data: bytes, path: Path) -> list[tuple[int, list[object]]]:
    try:
        text = data.decode("utf-8-sig")  # drops the BOM Excel writes, if there is one
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")  # Chinese Excel saves CSV as GBK, a subset of it
        except UnicodeDecodeError as exc:
            raise InventoryError(f"{path}: not UTF-8 or GBK/GB18030 text") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return [(number, list(cells)) for number, cells in enumerate(reader, start=1)]
    except csv.Error as exc:
        raise InventoryError(f"{path}: line {reader.line_num}: {exc}") from exc


@contextmanager
def _xlsx_rows(path: Path) -> Iterator[tuple[Iterator[tuple[int, list[object]]], int | None]]:
    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and extensions it does not need for values.
            warnings.simplefilter("ignore", UserWarning)
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InventoryError(f"{path}: not a readable .xlsx workbook ({exc})") from exc
    try:
        sheet = book.worksheets[0]
        # Read-only sheets yield empty tuples for empty rows, so the count is Excel's.
        yield ((number, list(cells)) for number, cells in
               enumerate(sheet.iter_rows(values_only=True), start=1)), sheet.max_row
    finally:
        book.close()


def _map_header(cells: Sequence[object]) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """Field → column index, field → header as written, and warnings."""
    columns: dict[str, int] = {}
    labels: dict[str, str] = {}
    warns: list[str] = []
    for index, cell in enumerate(cells):
        text = _text(cell)
        if text is None:
            continue
        field = _FIELD_BY_HEADER.get(_norm(text))
        if field is None:
            warns.append(f"column {text!r} is not an archive field; ignored")
        elif field in columns:
            warns.append(f"column {text!r} repeats {labels[field]!r}; ignored")
        else:
            columns[field], labels[field] = index, text
    return columns, labels, warns


# ---------------------------------------------------------------------------- parsing

def _parse_row(number: int, values: Mapping[str, object], site: str | None,
               label: _Label) -> tuple[dict[str, object], list[RowError]]:
    device: dict[str, object] = {}
    errors: list[RowError] = []

    def bad(field: str, message: str) -> None:
        errors.append(RowError(number, label(field), message))

    for field in ("id", "name", "vendor", "model", "serial", "firmware"):
        if text := _text(values.get(field)):
            device[field] = text
    if text := _text(values.get("site")) or site:
        device["site"] = text
    if text := _text(values.get("system")):
        system = _SYSTEM_BY_VALUE.get(_norm(text).removesuffix("系统"))
        if system is None:
            bad("system", f"unknown system {text!r} (known: {', '.join(_SYSTEMS)}, "
                          "视频监控, 门禁, 对讲, 报警, 网络, 电源)")
        else:
            device["system"] = system
    if text := _text(values.get("kind")):
        kind = _KIND_BY_VALUE.get(_norm(text), text.lower())
        if _IDENTIFIER.match(kind):
            device["kind"] = kind
        else:
            bad("kind", f"unknown device type {text!r} (e.g. camera, nvr, switch, "
                        "摄像机, 硬盘录像机, 交换机, 门禁控制器, 门口机, 报警主机, UPS)")
    host = _text(values.get("host"))
    if host is None:
        bad("host", "the IP address / host is missing")
    elif not _valid_host(host):
        bad("host", f"{host!r} is not a valid IP address or host name")
    else:
        device["host"] = host
    location = {k: text for k, f in (("building", "building"), ("floor", "floor"),
                                     ("place", "location")) if (text := _text(values.get(f)))}
    if location:
        device["location"] = location
    for field in ("installed", "warranty_until"):
        try:
            if (day := _date(values.get(field))) is not None:
                device[field] = day
        except ValueError:
            bad(field, f"{_text(values.get(field))!r} is not a date (e.g. 2026-01-31)")
    for field in ("depends_on", "tags"):
        if items := _split(_text(values.get(field))):
            device[field] = items
    return device, errors


def _pydantic_errors(exc: ValidationError, number: int, known: Sequence[RowError],
                     label: _Label) -> list[RowError]:
    """Errors pydantic found, minus those in columns already reported for this row."""
    reported = {e.column for e in known}
    out: list[RowError] = []
    for err in exc.errors():
        parts = [p for p in err["loc"] if isinstance(p, str)]
        field = parts[-1] if parts[:1] == ["location"] and len(parts) > 1 else \
            (parts[0] if parts else None)
        column = label(field) if field else None
        if column in reported:
            continue
        reported.add(column)
        if err["type"] == "missing" and field == "id":
            message = "no id, and no ASCII name or valid host to derive one from"
        elif err["type"] == "missing":
            message = f"{field} is missing"
        elif err["type"] == "string_pattern_mismatch":
            message = (f"{err['input']!r} is not a valid identifier (ASCII letters, digits "
                       "and _ . : -, starting with a letter or digit)")
        else:
            message = err["msg"]
        out.append(RowError(number, column, message))
    return out


def _derive_id(device: Mapping[str, object], taken: set[str]) -> str | None:
    """A stable id from an ASCII name, else from the host: ``cam-127-0-0-5``."""
    name, host = str(device.get("name", "")), device.get("host")
    base = _slug(name) if name.isascii() else ""
    if not base and isinstance(host, str):
        kind = str(device.get("kind", "dev"))
        base = f"{_ID_PREFIX.get(kind, kind.replace('_', '-'))}-{_slug(host)}"
    if not base:
        return None
    ident, n = base, 2
    while ident in taken:
        ident, n = f"{base}-{n}", n + 1
    return ident


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:100]


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Excel keeps numbers as floats: 3.0 is the floor "3"
    if isinstance(value, datetime) and value.time() == time():
        value = value.date()
    text = value.isoformat() if isinstance(value, date | time) else str(value)
    return text.strip() or None


def _blank(cells: Sequence[object]) -> bool:
    return all(_text(c) is None for c in cells)


def _date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if text is None:
        return None
    match = _DATE.match(text)
    if match is None:
        raise ValueError(text)
    return date(*(int(g) for g in match.groups()))


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        # Dotted digits that are not an address (192.168.1.300) are a typo, not a name.
        return not re.fullmatch(r"[\d.]+", host) and bool(_HOSTNAME.match(host))


def _split(text: str | None) -> list[str]:
    return [item for part in _LIST_SEPARATORS.split(text or "") if (item := part.strip())]
