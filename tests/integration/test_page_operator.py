"""The status page tells an operator what they need without a terminal: the silence in
force (its reason and end), when each finding started, the permit's recent history (who
or which rule), the last poll and the last error — every time in the budget's zone,
humanised ("15:02 CET, 7 min ago")."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from tests.integration.test_server import BUDGET, NOW, App, view
from watchdog.core.model import Finding, PermitChange, Silence
from watchdog.core.view import View
from watchdog.page import render

BERLIN = replace(BUDGET, timezone="Europe/Berlin", tz=ZoneInfo("Europe/Berlin"))
# NOW is 14:09 UTC on 2026-11-27: 15:09 CET. The app's clock reads NOW + 5 s.


def text(html: str) -> str:
    """The page as a person reads it: tags gone, whitespace collapsed."""
    plain = re.sub(r"<svg.*?</svg>", " ", html, flags=re.S)
    plain = re.sub(r"<[^>]+>", " ", plain)
    plain = plain.replace("&#x27;", "'").replace("&amp;", "&")
    return re.sub(r"\s+", " ", plain)


def operator_view() -> View:
    v = view(
        armed=False,
        budget=BERLIN,
        last_error="HTTP 503 from the provider",
        findings=[Finding("spike", "warning", 9.0, 2.0, "Burning $9.00/h, 18.0x the usual.")],
    )
    poll = replace(v.poll, last_error_kind="transient", last_error_at=NOW - timedelta(minutes=4))
    return replace(
        v,
        poll=poll,
        silences=(
            Silence(
                "spike",
                NOW + timedelta(hours=2),
                "load test of the nightly batch",
                created_at=NOW - timedelta(minutes=30),
            ),
            Silence("daily_limit", NOW - timedelta(minutes=1), "an expired silence"),
        ),
        permit_history=(
            PermitChange(NOW - timedelta(minutes=7), "revoked", "rules", "daily_limit critical"),
            PermitChange(NOW - timedelta(hours=3), "armed", "alice", "manual arm"),
        ),
    )


def test_the_page_shows_the_silence_permit_history_and_times_in_the_budgets_zone() -> None:
    html = App(operator_view()).client.get("/").text
    page = text(html)
    # The silence in force: rule, end (in the budget's zone, humanised), reason, when set.
    assert "spike silenced until 17:09 CET, in 2 h — load test of the nightly batch" in page
    assert "(set 14:39 CET, 30 min ago)" in page
    assert "an expired silence" not in page
    assert "notifications silenced" in page  # on the finding it holds back
    # The permit's recent history, newest first, with who or which rule.
    assert "15:02 CET, 7 min ago revoked by rules daily_limit critical" in page
    assert "12:09 CET, 3 h ago armed by alice manual arm" in page
    assert page.index("revoked by rules") < page.index("armed by alice")
    assert "Launches blocked: daily_limit critical — revoked 15:02 CET, 7 min ago by rules" in page
    # The last poll and the last error, in the zone and relative to now.
    assert "Last poll 15:09 CET, 5 s ago" in page
    assert "Last error (transient) 15:05 CET, 4 min ago: HTTP 503 from the provider" in page
    assert "times in Europe/Berlin" in page
    assert "UTC" not in html  # no time left in another zone
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html


def test_the_page_shows_when_each_finding_started() -> None:
    v = replace(
        view(budget=BERLIN),
        findings=(
            Finding("spike", "warning", 9.0, 2.0, "Burning fast."),
            Finding("daily_limit", "warning", 17.0, 20.0, "Close to the limit.", key="batch"),
        ),
    )
    since = {
        ("spike", "*"): NOW - timedelta(minutes=40),
        ("daily_limit", "batch"): NOW - timedelta(days=1, hours=2),
    }
    page = text(render(replace(v, finding_since=tuple(since.items())), NOW + timedelta(minutes=2)))
    assert "Burning fast. since 14:29 CET, 42 min ago" in page
    assert "Close to the limit. since Nov 26 13:09 CET, 26 h 2 min ago" in page


def test_the_stale_finding_says_when_the_data_went_stale() -> None:
    v = view(budget=BERLIN).at(NOW + timedelta(minutes=25))  # stale after 10 min
    page = text(render(v, NOW + timedelta(minutes=25)))
    assert "since 15:19 CET, 15 min ago" in page
    assert "Last poll 15:09 CET, 25 min ago" in page


def test_the_page_says_when_nothing_is_silenced_or_recorded() -> None:
    page = text(App(view()).client.get("/").text)
    assert "No active silences" in page
    assert "No permit changes recorded yet" in page
    assert "Last poll 14:09 UTC, 5 s ago" in page
