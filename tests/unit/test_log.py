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


# -- partial secrets ------------------------------------------------------------------------

WATCHED = "sk-or-v1-e2e-watched-key-0123456789abcdef0123456789abcdef"
ODD = "sk-or-v1-Q\"w\\Y<z>&e%f+g'h;J~K9mN3pL"  # a key with characters JSON and URLs escape


def test_a_key_prefix_echoed_by_the_provider_is_masked() -> None:
    log.set_secrets([WATCHED])

    said = log.scrub(f'401 {{"message": "Invalid key {WATCHED[:20]}..."}}')

    assert said == '401 {"message": "Invalid key ****..."}'


def test_a_key_suffix_or_middle_is_masked_with_its_run() -> None:
    log.set_secrets([WATCHED])

    assert log.scrub(f"key ...{WATCHED[-14:]} revoked") == "key ...**** revoked"
    assert log.scrub(f"id=x{WATCHED[20:40]}y, ok") == "****, ok"


def test_a_partial_key_in_an_escaped_form_is_masked() -> None:
    log.set_secrets([ODD])

    for text in (ODD[:20], json.dumps(ODD[:20])[1:-1], urllib.parse.quote(ODD[:20], safe="")):
        said = log.scrub(f"Invalid key {text}... (401)")
        assert said == "Invalid key ****... (401)", text


def test_twelve_shared_characters_are_masked_eleven_survive() -> None:
    log.set_secrets([WATCHED])

    # The public prefix "sk-or-v1-" and two characters of the key stay; three do not.
    assert log.scrub("key sk-or-v1-e2 given") == "key sk-or-v1-e2 given"
    assert log.scrub("key sk-or-v1-e2e given") == "key **** given"
    assert log.scrub("another key sk-or-v1-aaaa0000bbbb1111") == (
        "another key sk-or-v1-aaaa0000bbbb1111"
    )


def test_partial_masking_reaches_library_records_and_nested_values() -> None:
    stream = configured(secrets=(WATCHED,))

    logging.getLogger("httpx").warning("401 for %s...", WATCHED[:24])
    log.get_logger().info("poll_failed", error={"detail": [f"key {WATCHED[-30:]}"]})

    first, second = json_lines(stream)
    assert first["event"] == "401 for ****..."
    assert second["error"] == {"detail": ["key ****"]}
    assert WATCHED[9:21] not in stream.getvalue()


def test_parts_of_a_notification_url_are_masked_whole_and_partially() -> None:
    url = "json://ops:Hunter2-Pass-Word@127.0.0.1:9/hook?pw=verysecretpassword"
    log.set_secrets([url])

    assert log.scrub("auth failed for verysecretpassword") == "auth failed for ****"
    assert log.scrub("pw verysecretpa... refused") == "pw ****... refused"
    assert log.scrub("login Hunter2-Pass failed") == "login **** failed"


def test_the_shown_form_of_a_notification_url_survives_the_scrubber() -> None:
    from watchdog.notify import describe_target

    url = "json://ops:Hunter2-Pass-Word@127.0.0.1:9/hook?pw=verysecretpassword"
    log.set_secrets([url, WATCHED])
    shown = describe_target(url)

    assert log.scrub(f"delivered to {shown}") == f"delivered to {shown}"


def test_a_comment_line_of_a_key_file_is_not_matched_partially() -> None:
    log.set_secrets([KEY_FILE])

    assert log.scrub("at 2024-05-01T00:00:00Z rotated") == "at 2024-05-01T00:00:00Z rotated"


def test_partial_scrubbing_stays_fast() -> None:
    import time

    log.set_secrets([WATCHED, ODD, "sk-or-v1-e2e-management-key-fedcba9876543210", URL])
    line = "poll ok: spent $1.20 of $20.00 (6%), sk-or-v1-abc model=openai/gpt-4o " * 3
    started = time.perf_counter()
    for _ in range(2000):
        log.scrub(line)
    assert time.perf_counter() - started < 1.0
    big = "x" * 1_000_000 + WATCHED[:15]
    started = time.perf_counter()
    assert log.scrub(big).endswith("****")
    assert time.perf_counter() - started < 1.0
