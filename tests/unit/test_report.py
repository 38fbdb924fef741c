"""The spend report: per-model totals, bars, and the table a person reads."""

from __future__ import annotations

from datetime import date

from watchdog.providers.base import ActivityRow
from watchdog.report import as_json, bar, by_model, render


def row(day: int, model: str, usage: float, requests: int = 10) -> ActivityRow:
    return ActivityRow(date(2026, 11, day), model, "Prov", usage, requests, 100, 50)


def test_models_are_summed_over_the_period_and_sorted_by_spend() -> None:
    rows = [
        row(1, "a/cheap", 1.0),
        row(20, "b/pricey", 9.0),
        row(21, "b/pricey", 3.0),
        row(21, "a/cheap", 0.5),
        row(25, "c/mid", 4.0),
    ]
    models = by_model(rows, since=date(2026, 11, 15))
    assert [(m.model, m.spend, m.requests) for m in models] == [
        ("b/pricey", 12.0, 20),
        ("c/mid", 4.0, 10),
        ("a/cheap", 0.5, 10),
    ]


def test_bars_scale_to_the_largest_value() -> None:
    assert bar(10, 10, width=10) == "█" * 10
    assert bar(5, 10, width=10) == "█" * 5
    assert bar(0.5625, 10, width=10) == "▌"  # 4.5 eighths rounds to 4: half a cell
    assert bar(0, 10) == "" and bar(3, 0) == ""


def test_the_table_puts_models_first_and_marks_missing_days() -> None:
    models = by_model([row(20, "b/pricey", 9.0), row(21, "a/cheap", 3.0)], date(2026, 11, 1))
    text = render([(date(2026, 11, 20), None), (date(2026, 11, 21), 12.0)], models, zone="UTC")
    lines = text.splitlines()
    assert lines[0] == "Spend by model (provider activity, UTC days): $12.00 in all"
    assert lines[2].split()[:4] == ["b/pricey", "Prov", "$9.00", "75%"]
    assert text.index("b/pricey") < text.index("a/cheap") < text.index("Spend by day")
    assert "Fri 2026-11-20      no data" in text
    assert lines[-1].endswith("█" * 30)


def test_json_keeps_unknown_days_as_null() -> None:
    data = as_json([(date(2026, 11, 20), None), (date(2026, 11, 21), 1.23456789)], None, "UTC")
    assert data["days"] == [
        {"date": "2026-11-20", "spend": None},
        {"date": "2026-11-21", "spend": 1.234568},
    ]
    assert data["models"] is None
