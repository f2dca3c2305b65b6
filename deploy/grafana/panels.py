"""Small builders for Grafana dashboard JSON (schema 39, Grafana 10.4 / 11).

Plain dicts rather than grafana-foundation-sdk: the SDK is versioned per Grafana release
(PyPI versions carry a timestamp epoch, ``1769699998!10.1.0``), would be one more
dependency to pin for ~50 panels of five types, and its output is the same JSON the
tests validate anyway.  Every query panel points at the provisioned datasource by uid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
DATASOURCE_UID = "elvwatch-prometheus"
DS: dict[str, str] = {"type": "prometheus", "uid": DATASOURCE_UID}
GRID_WIDTH = 24

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str = ""
    # Tables and stats show the value now; graphs a range.
    instant: bool = False
    table: bool = False


def q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def now(expr: str, legend: str = "") -> Query:
    return Query(expr, legend, instant=True)


def table_q(expr: str) -> Query:
    return Query(expr, instant=True, table=True)


def value_names(names: dict[int, tuple[str, str]]) -> list[Json]:
    """Value mappings: ``{0: ("down", "red"), 1: ("up", "green")}``."""
    return [{"type": "value", "options": {
        str(value): {"text": text, "color": color, "index": index}
        for index, (value, (text, color)) in enumerate(sorted(names.items()))}}]


UP_DOWN = value_names({0: ("down", "red"), 1: ("up", "green")})


def variable(name: str, label: str, query: str, *, multi: bool, description: str) -> Json:
    """A query variable filled from ``label_values(...)``; multi ones offer "All" as
    ``.*`` so panels can always match with ``=~"$name"``."""
    return {
        "name": name, "label": label, "description": description, "type": "query",
        "datasource": DS, "query": query, "definition": query, "refresh": 2, "sort": 1,
        "regex": "", "hide": 0, "multi": multi, "includeAll": multi,
        **({"allValue": ".*", "current": {"text": "All", "value": "$__all"}}
           if multi else {"current": {}}),
        "options": [],
    }


def _targets(queries: list[Query]) -> list[Json]:
    out = []
    for index, query in enumerate(queries):
        target: Json = {"refId": chr(ord("A") + index), "datasource": DS,
                        "expr": query.expr, "legendFormat": query.legend or "__auto",
                        "instant": query.instant, "range": not query.instant,
                        "format": "table" if query.table else "time_series"}
        out.append(target)
    return out


def _field_defaults(unit: str, thresholds: list[tuple[float | None, str]] | None,
                    min_value: float | None, max_value: float | None,
                    no_value: str | None, mappings: list[Json] | None) -> Json:
    steps = thresholds or [(None, "green")]
    defaults: Json = {
        "unit": unit,
        "color": {"mode": "thresholds" if thresholds else "palette-classic"},
        "thresholds": {"mode": "absolute",
                       "steps": [{"color": color, "value": value} for value, color in steps]},
        "mappings": mappings or [],
    }
    if min_value is not None:
        defaults["min"] = min_value
    if max_value is not None:
        defaults["max"] = max_value
    if no_value is not None:
        defaults["noValue"] = no_value
    return defaults


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    variables: list[Json] = field(default_factory=list)
    panels: list[Json] = field(default_factory=list)
    _next_id: int = 1
    _x: int = 0
    _y: int = 0
    _row_height: int = 0

    def _place(self, width: int, height: int) -> Json:
        if self._x + width > GRID_WIDTH:
            self._x, self._y, self._row_height = 0, self._y + self._row_height, 0
        pos = {"h": height, "w": width, "x": self._x, "y": self._y}
        self._x += width
        self._row_height = max(self._row_height, height)
        return pos

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def row(self, title: str) -> None:
        if self._x:
            self._x, self._y, self._row_height = 0, self._y + self._row_height, 0
        self.panels.append({"id": self._id(), "type": "row", "title": title,
                            "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": self._y}})
        self._y += 1

    def panel(self, kind: str, title: str, description: str, queries: list[Query], *,
              width: int = 6, height: int = 8, unit: str = "short",
              thresholds: list[tuple[float | None, str]] | None = None,
              min_value: float | None = None, max_value: float | None = None,
              no_value: str | None = None, mappings: list[Json] | None = None,
              options: Json | None = None,
              transformations: list[Json] | None = None, custom: Json | None = None,
              ) -> Json:
        defaults = _field_defaults(unit, thresholds, min_value, max_value, no_value,
                                   mappings)
        if custom:
            defaults["custom"] = custom
        panel: Json = {
            "id": self._id(), "type": kind, "title": title, "description": description,
            "datasource": DS, "gridPos": self._place(width, height),
            "targets": _targets(queries),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or {},
        }
        if transformations:
            panel["transformations"] = transformations
        self.panels.append(panel)
        return panel

    def stat(self, title: str, description: str, queries: list[Query], **kw: Any) -> Json:
        kw.setdefault("width", 4)
        kw.setdefault("height", 4)
        kw.setdefault("options", {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                                    "values": False},
                                  "colorMode": "background", "graphMode": "none",
                                  "textMode": "auto", "justifyMode": "auto",
                                  "orientation": "auto"})
        return self.panel("stat", title, description, queries, **kw)

    def graph(self, title: str, description: str, queries: list[Query], **kw: Any) -> Json:
        kw.setdefault("width", 12)
        kw.setdefault("options", {"legend": {"displayMode": "table", "placement": "right",
                                             "showLegend": True, "calcs": ["lastNotNull"]},
                                  "tooltip": {"mode": "multi", "sort": "desc"}})
        kw.setdefault("custom", {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                 "showPoints": "never", "spanNulls": False})
        return self.panel("timeseries", title, description, queries, **kw)

    def bars(self, title: str, description: str, queries: list[Query], **kw: Any) -> Json:
        kw.setdefault("width", 12)
        kw.setdefault("options", {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                                    "values": False},
                                  "orientation": "horizontal", "displayMode": "gradient",
                                  "showUnfilled": True, "valueMode": "color"})
        return self.panel("bargauge", title, description, queries, **kw)

    def table(self, title: str, description: str, queries: list[Query], *,
              rename: dict[str, str] | None = None, **kw: Any) -> Json:
        """An instant table; several queries are merged on their common labels."""
        kw.setdefault("width", 12)
        kw.setdefault("options", {"showHeader": True, "cellHeight": "sm",
                                  "footer": {"show": False, "reducer": ["sum"],
                                             "fields": ""}})
        transformations: list[Json] = [{"id": "merge", "options": {}}] if len(queries) > 1 \
            else []
        transformations.append({"id": "organize", "options": {
            "excludeByName": {"Time": True, "__name__": True, "instance": True,
                              "job": True},
            "renameByName": rename or {}, "indexByName": {}}})
        return self.panel("table", title, description, queries,
                          transformations=transformations, **kw)

    def timeline(self, title: str, description: str, queries: list[Query],
                 **kw: Any) -> Json:
        kw.setdefault("width", 24)
        kw.setdefault("options", {"showValue": "never", "mergeValues": True,
                                  "rowHeight": 0.9, "alignValue": "left",
                                  "legend": {"showLegend": False, "displayMode": "list",
                                             "placement": "bottom"},
                                  "tooltip": {"mode": "single", "sort": "none"}})
        return self.panel("state-timeline", title, description, queries, **kw)

    def build(self) -> Json:
        return {
            "id": None, "uid": self.uid, "title": self.title,
            "description": self.description, "tags": ["elvwatch"],
            "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True,
            "graphTooltip": 1, "timezone": "browser", "refresh": "30s",
            "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
            "time": {"from": "now-6h", "to": "now"}, "timepicker": {},
            "templating": {"list": self.variables},
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard"}]},
            "links": [{"title": "elvwatch", "type": "dashboards", "tags": ["elvwatch"],
                       "asDropdown": True, "includeVars": True, "keepTime": True,
                       "icon": "external link", "targetBlank": False, "tooltip": "",
                       "url": ""}],
            "panels": self.panels,
        }
