from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
import yaml

from elvwatch.config.inventory import (
    ImportResult,
    InventoryError,
    RowError,
    devices_yaml,
    export_devices,
    import_devices,
)
from elvwatch.config.loading import load_config
from elvwatch.config.schema import DeviceConfig, Location, System

DATA = Path(__file__).parent / "data" / "inventory"


def _by_id(result: ImportResult) -> dict[str, dict[str, object]]:
    return {str(d["id"]): d for d in result.devices}


def _write_config(tmp_path: Path, devices: list[dict[str, object]]) -> Path:
    (tmp_path / "devices.yaml").write_text(devices_yaml(devices, "test"), encoding="utf-8")
    config = tmp_path / "elvwatch.yaml"
    config.write_text("sites:\n  - id: sunny\n    name: 阳光花园\ninclude: [devices.yaml]\n",
                      encoding="utf-8")
    return config


def test_chinese_headers_map_to_archive_fields() -> None:
    result = import_devices(DATA / "devices_zh.csv")

    assert result.errors == []
    assert [d["id"] for d in result.devices] == ["sw-gate", "nvr-1", "cam-127-0-0-5"]
    nvr = _by_id(result)["nvr-1"]
    assert nvr == {
        "id": "nvr-1", "name": "监控中心录像机", "site": "sunny", "kind": "nvr",
        "host": "127.0.0.3", "vendor": "海康威视", "model": "DS-9632N-I8",
        "serial": "DS96320123", "firmware": "V4.62.210",
        "location": {"building": "物业楼", "floor": "1", "place": "监控室"},
        "installed": date(2025, 3, 2), "warranty_until": date(2028, 3, 2),
        "depends_on": ["sw-gate"],
    }
    switch = _by_id(result)["sw-gate"]
    assert switch["kind"] == "switch"
    assert switch["installed"] == date(2025, 3, 1)  # 2025/3/1
    assert switch["warranty_until"] == date(2028, 3, 1)  # 2028年3月1日
    assert switch["tags"] == ["出口", "室外"]  # split on the full-width comma
    camera = _by_id(result)["cam-127-0-0-5"]
    assert camera["kind"] == "camera"
    assert camera["depends_on"] == ["sw-gate", "nvr-1"]  # split on ；
    assert camera["location"] == {"place": "小区东大门"}


def test_system_implied_by_kind_is_left_out_and_other_systems_kept(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("名称,站点,子系统,类型,IP\n"
                        "Cam A,sunny,视频监控系统,摄像机,127.0.0.5\n"
                        "Meter,sunny,电源,pdu,127.0.0.6\n", encoding="utf-8")

    result = import_devices(csv_file)

    assert result.errors == []
    assert "system" not in result.devices[0]
    assert result.devices[1]["system"] == "power"
    assert result.devices[1]["kind"] == "pdu"
    assert len(result.warnings) == 1
    assert "row 3: kind 'pdu' is not built in" in result.warnings[0]


def test_english_headers_derive_unique_ids_from_names_and_fill_site() -> None:
    result = import_devices(DATA / "devices_en.csv", site="sunny")

    assert result.errors == []
    assert result.warnings == []
    assert [d["id"] for d in result.devices] == ["gate-camera", "gate-camera-2",
                                                 "lobby-door-station"]
    second = result.devices[1]
    assert second["site"] == "sunny"  # the empty cell took the --site value
    assert second["kind"] == "camera"
    station = result.devices[2]
    assert station["kind"] == "door_station"
    assert station["location"] == {"building": "Block 3", "floor": "1", "place": "Lobby"}
    assert "warranty_until" not in station  # empty cells are omitted
    assert "firmware" not in station


def test_derived_ids_do_not_take_an_id_given_later_in_the_file(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("ID,Name,Kind,Host\n"
                        ",Gate,camera,127.0.0.5\n"
                        "gate,Given,camera,127.0.0.6\n"
                        ",大门摄像机,camera,127.0.0.7\n"
                        ",大门摄像机,camera,127.0.0.7\n", encoding="utf-8")

    result = import_devices(csv_file, site="sunny")

    assert [d["id"] for d in result.devices] == ["gate-2", "gate", "cam-127-0-0-7",
                                                 "cam-127-0-0-7-2"]


def test_gbk_encoded_csv_is_read(tmp_path: Path) -> None:
    text = (DATA / "devices_zh.csv").read_text(encoding="utf-8-sig")
    gbk_file = tmp_path / "设备清单.csv"
    gbk_file.write_bytes(text.replace("\n", "\r\n").encode("gbk"))

    result = import_devices(gbk_file)

    assert result.errors == []
    assert result.devices == import_devices(DATA / "devices_zh.csv").devices
    assert result.devices[0]["name"] == "大门POE交换机"


def test_bad_rows_are_reported_with_excel_row_numbers_and_columns() -> None:
    result = import_devices(DATA / "bad_rows.csv")

    assert [d["id"] for d in result.devices] == ["cam-1", "nvr-1"]
    assert [(e.row, e.column) for e in result.errors] == [
        (3, "Host"),       # missing host
        (5, "System"),     # row 4 is blank, still counted
        (6, "Installed"),  # 2025-13-45
        (7, "ID"),         # duplicate of row 2
        (8, "Host"),       # 192.168.1.300
        (9, "ID"),         # not an identifier (pydantic)
        (10, "Kind"),      # missing (pydantic)
        (11, "Site"),      # a site name, not a site id (pydantic)
    ]
    messages = {e.row: e.message for e in result.errors}
    assert "plumbing" in messages[5]
    assert "2025-13-45" in messages[6]
    assert "also row 2" in messages[7]
    assert "192.168.1.300" in messages[8]
    assert str(result.errors[0]) == "row 3, Host: the IP address / host is missing"


def test_unknown_columns_are_warned_about_once() -> None:
    result = import_devices(DATA / "devices_zh.csv")

    assert result.warnings == ["column '备注' is not an archive field; ignored"]


def test_xlsx_reads_date_cells_numbers_and_reports_bad_row(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([])  # a blank first row: the header is the first non-empty one
    sheet.append(["设备名称", "设备类型", "IP地址", "序列号", "楼层", "安装日期", "质保期至"])
    sheet.append(["门禁控制器A", "门禁控制器", "127.0.0.20", 20250101, 3,
                  date(2025, 1, 31), datetime(2028, 1, 31)])
    sheet.append(["Alarm Panel", "报警主机", "127.0.0.21", "AP-1", None,
                  "2025年2月1日", date(2027, 2, 1)])
    sheet.append(["Broken", "UPS", "not an address!", None, None, "soon", None])
    path = tmp_path / "archive.xlsx"
    book.save(path)

    result = import_devices(path, site="sunny")

    assert result.devices == [
        {"id": "acp-127-0-0-20", "name": "门禁控制器A", "site": "sunny",
         "kind": "access_panel", "host": "127.0.0.20", "serial": "20250101",
         "location": {"floor": "3"}, "installed": date(2025, 1, 31),
         "warranty_until": date(2028, 1, 31)},
        {"id": "alarm-panel", "name": "Alarm Panel", "site": "sunny", "kind": "alarm_panel",
         "host": "127.0.0.21", "serial": "AP-1", "installed": date(2025, 2, 1),
         "warranty_until": date(2027, 2, 1)},
    ]
    assert result.errors == [
        RowError(5, "IP地址", "'not an address!' is not a valid IP address or host name"),
        RowError(5, "安装日期", "'soon' is not a date (e.g. 2026-01-31)"),
    ]


def test_imported_devices_validate_and_load_through_an_include(tmp_path: Path) -> None:
    result = import_devices(DATA / "devices_zh.csv")
    for device in result.devices:
        DeviceConfig.model_validate(device)

    config = load_config(_write_config(tmp_path, result.devices))

    assert len(config.devices) == 3
    nvr = config.devices["nvr-1"]
    assert nvr.system is System.CCTV
    assert nvr.config.location == Location(building="物业楼", floor="1", place="监控室")
    assert nvr.config.warranty_until == date(2028, 3, 2)
    assert config.devices["cam-127-0-0-5"].config.depends_on == ["sw-gate", "nvr-1"]
    assert config.devices["sw-gate"].system is System.NETWORK


def test_devices_yaml_is_an_include_file_with_readable_chinese_and_iso_dates() -> None:
    text = devices_yaml(import_devices(DATA / "devices_zh.csv").devices)

    assert text.startswith("devices:\n  - id: sw-gate\n    name: 大门POE交换机\n")
    assert "    installed: 2025-03-01\n" in text
    assert yaml.safe_load(text)["devices"][0]["installed"] == date(2025, 3, 1)


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_exported_csv_reimports_to_the_same_devices(tmp_path: Path, language: str) -> None:
    original = import_devices(DATA / "devices_zh.csv").devices \
        + import_devices(DATA / "devices_en.csv", site="sunny").devices[2:]
    config = load_config(_write_config(tmp_path, original))
    out = io.StringIO(newline="")

    count = export_devices(config, out, language=language)

    exported = tmp_path / "export.csv"
    exported.write_text(out.getvalue(), encoding="utf-8-sig", newline="")
    again = import_devices(exported)
    assert count == 4
    assert again.errors == []
    assert again.warnings == []
    assert again.devices == original


def test_export_headers_follow_the_language(tmp_path: Path) -> None:
    config = load_config(_write_config(tmp_path, import_devices(DATA / "devices_zh.csv").devices))
    english, chinese = io.StringIO(), io.StringIO()

    export_devices(config, english)
    export_devices(config, chinese, language="zh-CN")

    assert english.getvalue().splitlines()[0].startswith("ID,Name,Site,System,Kind,")
    zh_lines = chinese.getvalue().splitlines()
    assert zh_lines[0].startswith("设备编号,设备名称,站点,系统,设备类型,")
    assert zh_lines[2].startswith("nvr-1,监控中心录像机,sunny,视频监控,硬盘录像机,")
    with pytest.raises(ValueError, match="unknown language"):
        export_devices(config, io.StringIO(), language="fr")


def test_unusable_files_raise_inventory_error(tmp_path: Path) -> None:
    old_excel = tmp_path / "archive.xls"
    old_excel.write_bytes(b"\xd0\xcf\x11\xe0")
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n", encoding="utf-8")
    no_header = tmp_path / "title.csv"
    no_header.write_text("阳光花园设备清单\n", encoding="utf-8")
    fake_xlsx = tmp_path / "fake.xlsx"
    fake_xlsx.write_text("not a zip", encoding="utf-8")

    for path, message in [(old_excel, "save the sheet as .xlsx or .csv"),
                          (empty, "empty"), (no_header, "not a header"),
                          (fake_xlsx, "not a readable .xlsx"),
                          (tmp_path / "missing.csv", "cannot read")]:
        with pytest.raises(InventoryError, match=message):
            import_devices(path)
