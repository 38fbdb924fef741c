"""/preflight with a runway floor when the runway is unknown: no promise it cannot keep."""

from __future__ import annotations

from dataclasses import replace

from tests.integration.test_server import App, view


def test_an_unknown_runway_does_not_pass_a_runway_floor() -> None:
    v = view()
    assert v.metrics is not None
    unknown = replace(v, metrics=replace(v.metrics, runway_days=None, balance=None))
    app = App(unknown)
    asked = app.client.get("/preflight", params={"cost": "1", "min_runway_days": "30"})
    assert asked.status_code == 409
    assert any("runway unknown" in reason for reason in asked.json()["reasons"])
    plain = app.client.get("/preflight", params={"cost": "1"})
    assert plain.status_code == 200  # without a floor, an unknown runway is no reason
