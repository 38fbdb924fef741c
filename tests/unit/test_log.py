"""Logging: ours and the libraries' records through one chain, rendered alike, scrubbed."""

from __future__ import annotations

import io
import json
import logging
import urllib.parse
from collections.abc import Iterator
from typing import Any, Literal

import pytest

from watchdog import log

KEY = "sk-or-v1-0123456789abcdef"
KEY_FILE = "sk-or-v1-fedcba9876543210\n# rotated 2024-05-01"  # a key file with a comment line
URL = "tgram://123456:AAbbCCdd/987654?format=markdown"


@pytest.fixture(autouse=True)
def reset_log() -> Iterator[None]:
    yield
    log.reset()
    log.set_secrets([])


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(stream)]


def configured(
    format: Literal["auto", "json", "console"] = "json", secrets: tuple[str, ...] = (KEY,)
) -> io.StringIO:
    stream = io.StringIO()
    log.configure(format=format, stream=stream)
    log.set_secrets(secrets)
    return stream


def test_library_record_is_scrubbed_json_with_level_and_logger() -> None:
    stream = configured()

    logging.getLogger("apprise").warning("url %s", KEY)

    [record] = json_lines(stream)
    assert record["event"] == "url ****"
    assert record["level"] == "warning"
    assert record["logger"] == "apprise"
    assert record["timestamp"].endswith("Z")
    assert KEY not in stream.getvalue()


def test_our_record_is_json_with_fields_and_nested_secret_scrubbed() -> None:
    stream = configured()

    log.get_logger().info("poll", spent_today=1.2, target={"urls": [f"https://x/?k={KEY}"]})

    [record] = json_lines(stream)
    assert record["event"] == "poll"
    assert record["level"] == "info"
    assert record["spent_today"] == 1.2
    assert record["target"] == {"urls": ["https://x/?k=****"]}
    assert "T" in record["timestamp"]
    assert record["timestamp"].endswith("Z")
    assert "logger" not in record


def test_repr_escaped_multiline_secret_is_scrubbed_whole() -> None:
    stream = configured(secrets=(KEY_FILE,))

    logging.getLogger("apprise").warning("config %r", KEY_FILE)

    [record] = json_lines(stream)
    assert record["event"] == "config '****'"


def test_json_escaped_multiline_secret_is_scrubbed_whole() -> None:
    stream = configured(secrets=(KEY_FILE,))

    log.get_logger().info("body", body=json.dumps({"key": KEY_FILE}))

    [record] = json_lines(stream)
    assert record["body"] == '{"key": "****"}'


def test_one_line_of_a_multiline_secret_is_scrubbed_on_its_own() -> None:
    stream = configured(secrets=(KEY_FILE,))

    log.get_logger().info("header", auth="Bearer sk-or-v1-fedcba9876543210")

    [record] = json_lines(stream)
    assert record["auth"] == "Bearer ****"


def test_url_encoded_secret_is_scrubbed() -> None:
    stream = configured(secrets=(URL,))
    encoded = urllib.parse.quote(URL, safe="")

    logging.getLogger("httpx").warning("GET https://relay/?to=%s failed", encoded)

    [record] = json_lines(stream)
    assert record["event"] == "GET https://relay/?to=**** failed"
    assert "AAbbCCdd" not in stream.getvalue()


def test_short_secrets_are_ignored() -> None:
    stream = configured(secrets=("abc",))

    log.get_logger().info("abc")

    assert json_lines(stream)[0]["event"] == "abc"


def test_console_format_renders_text_for_ours_and_a_library_scrubbed() -> None:
    stream = configured(format="console")

    log.get_logger().info("poll", key=KEY)
    logging.getLogger("apprise").warning("url %s", KEY)

    ours, theirs = lines(stream)
    for line in (ours, theirs):
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
        assert "\x1b[" not in line  # not a terminal: no colours
    assert "poll" in ours
    assert "key=****" in ours
    assert "url ****" in theirs
    assert "[apprise]" in theirs
    assert "warning" in theirs
    assert KEY not in stream.getvalue()


def test_auto_format_writes_json_when_not_a_terminal() -> None:
    stream = configured(format="auto")

    log.get_logger().info("poll")

    assert json_lines(stream)[0]["event"] == "poll"


def test_exception_message_secret_is_scrubbed_in_json() -> None:
    stream = configured()

    try:
        raise RuntimeError(f"401 for key {KEY}")
    except RuntimeError:
        log.get_logger().exception("poll failed")

    [record] = json_lines(stream)
    assert record["level"] == "error"
    assert "Traceback" in record["exception"]
    assert "RuntimeError: 401 for key ****" in record["exception"]
    assert KEY not in stream.getvalue()


def test_library_exception_secret_is_scrubbed_in_json() -> None:
    stream = configured()

    try:
        raise RuntimeError(f"cannot reach {KEY}")
    except RuntimeError:
        logging.getLogger("apprise").exception("send failed")

    [record] = json_lines(stream)
    assert record["logger"] == "apprise"
    assert "RuntimeError: cannot reach ****" in record["exception"]
    assert KEY not in stream.getvalue()


def test_exception_message_secret_is_scrubbed_on_console() -> None:
    stream = configured(format="console")

    try:
        raise RuntimeError(f"401 for key {KEY}")
    except RuntimeError:
        log.get_logger().exception("poll failed")

    text = stream.getvalue()
    assert "poll failed" in text
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: 401 for key ****" in text
    assert KEY not in text


def test_configure_twice_does_not_duplicate_lines() -> None:
    first = io.StringIO()
    log.configure(format="json", stream=first)
    second = io.StringIO()
    log.configure(format="json", stream=second)

    log.get_logger().info("poll")
    logging.getLogger("apprise").warning("late")

    assert first.getvalue() == ""
    assert [r["event"] for r in json_lines(second)] == ["poll", "late"]


def test_library_info_is_filtered_at_default_level_warning_passes() -> None:
    stream = configured()

    logging.getLogger("httpx").info("HTTP Request: GET https://openrouter.ai 200")
    logging.getLogger("httpx").warning("retrying")

    assert [(r["event"], r["level"]) for r in json_lines(stream)] == [("retrying", "warning")]


def test_our_debug_is_filtered_at_default_level() -> None:
    stream = configured()

    log.get_logger().debug("detail")
    log.get_logger().info("poll")

    assert [r["event"] for r in json_lines(stream)] == ["poll"]


def test_reset_removes_only_our_handler() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    configured()
    assert len(root.handlers) == len(before) + 1

    log.reset()

    assert root.handlers == before
