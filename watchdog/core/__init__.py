"""The pure core: every decision budget-watchdog makes, as functions of plain values.

Modules here import only the standard library and each other (an import-linter contract
in `make lint` fails the build otherwise): `model` (the domain types and the policy),
`burn` (spend and rates), `rules` (findings), `alerts` (the alert lifecycle), `permit`
(the permit state machine), `preflight` (headroom), `messages` (notification text),
`view` (what /status, /metrics and the page show) and `words` (how numbers are written).
The clock is read once per tick by the caller and passed in as `now`.
"""
