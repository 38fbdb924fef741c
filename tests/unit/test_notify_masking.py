"""How a notification target is shown: `describe_target` masks every credential a URL may
carry, and `secret_parts` names what it masked (for scrubbing errors about the target)."""

from __future__ import annotations

import pytest

from watchdog.notify import describe_target, scrub, secret_parts


def no_piece_of(secret: str, shown: str) -> bool:
    """Not 6 consecutive characters of `secret` in `shown`."""
    return all(secret[i : i + 6] not in shown for i in range(len(secret) - 5))


@pytest.mark.parametrize(
    "key",
    [
        "pw",
        "pwd",
        "passwd",
        "pass",
        "password",
        "secret",
        "token",
        "key",
        "apikey",
        "auth",
        "sig",
        "signature",
        "cred",
        "credential",
        "code",
        "hash",
        "X-PW",
        "userPassword",
        "Hash_Value",
    ],
)
def test_a_query_value_whose_key_names_a_secret_is_masked(key: str) -> None:
    shown = describe_target(f"json://127.0.0.1:9/x?{key}=verysecretpassword&to=ops")
    assert shown == f"json://127.0.0.1:9/x?{key}=****&to=ops"


@pytest.mark.parametrize("scheme", ["ntfy", "ntfys"])
def test_an_ntfy_topic_is_masked_in_every_segment(scheme: str) -> None:
    assert describe_target(f"{scheme}://ntfy.example.com/mytopicsecret") == (
        f"{scheme}://ntfy.example.com/****"
    )
    assert describe_target(f"{scheme}://127.0.0.1:8080/alerts/ops") == (
        f"{scheme}://127.0.0.1:8080/****/****"
    )
    assert "alerts" in secret_parts(f"{scheme}://127.0.0.1:8080/alerts/ops")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("gotify://gotify.example.com/abcdefgh", "gotify://gotify.example.com/****"),
        (
            "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi/phone",
            "pover://****@****/****",
        ),
        ("tgram://123456789:tokenpart/987654321", "tgram://****:****/****"),
        ("discord://4174216298/abcdefghij", "discord://****/****"),
        ("msteams://team/abc/def/ghi", "msteams://****/****/****/****"),
        ("matrix://bot:pw@matrix.example.com/!roomid", "matrix://bot:****@matrix.example.com/****"),
        ("slack://tokena/tokenb/tokenc/#ops", "slack://****/****/****/#ops"),
    ],
)
def test_every_path_segment_of_a_token_scheme_is_masked(url: str, shown: str) -> None:
    assert describe_target(url) == shown


@pytest.mark.parametrize("scheme", ["json", "jsons", "xml", "xmls", "form", "forms"])
def test_a_url_of_ones_own_keeps_short_plain_words_only(scheme: str) -> None:
    url = f"{scheme}://hooks.example.com/api/v2/hooks/a1b2c3/xkcdqz/correcthorsebattery/T0AAA"
    assert describe_target(url) == f"{scheme}://hooks.example.com/api/v2/hooks/****/****/****/****"


@pytest.mark.parametrize(
    "url",
    [
        "mailtos://bob:abcdef?ghijklmnopqr@example.com",
        "mailtos://bob:abcdef?ghijklmnopqr@example.com?to=ops@example.com",
        "mailtos://bob:abc?d=ghijklmnopqr@example.com?to=ops@example.com",
        "mailtos://bob:abc&ghijklmnopqr@example.com",
    ],
)
def test_a_password_with_an_unescaped_question_mark_is_masked_whole(url: str) -> None:
    shown = describe_target(url)
    assert shown.startswith("mailtos://bob:****@example.com")
    assert "ghijkl" not in shown and "abc" not in shown
    assert "ghijklmnopqr" in secret_parts(url)
    assert scrub(url, "bad query key 'ghijklmnopqr@example.com'") == (
        "bad query key '****@example.com'"
    )


def test_an_email_address_in_the_query_is_not_taken_for_a_password() -> None:
    url = "mailtos://alerts:secret99@smtp.example.com?from=me@example.com&to=ops@example.com"
    assert describe_target(url) == (
        "mailtos://alerts:****@smtp.example.com?from=me@example.com&to=ops@example.com"
    )
    assert describe_target("json://example.com?to=ops@example.com") == (
        "json://example.com?to=ops@example.com"
    )


def test_the_hostile_targets_leak_nothing() -> None:
    secrets = {
        "json://127.0.0.1:9/x?pw=verysecretpassword": "verysecretpassword",
        "ntfy://127.0.0.1:9/mytopicsecret": "mytopicsecret",
        "mailtos://bob:abcdef?ghijklmnopqr@example.com": "ghijklmnopqr",
        "json://127.0.0.1:9/?apikey=abcdef%3Fghijklmnopqr": "ghijklmnopqr",
        "json://127.0.0.1:9/hooks/correct-horse-battery-staple": "correct-horse-battery-staple",
    }
    for url, secret in secrets.items():
        assert no_piece_of(secret, describe_target(url)), url


def test_the_secret_parts_include_each_piece_between_delimiters() -> None:
    parts = secret_parts("json://127.0.0.1:9/?+X-Api=Bearer%20HDRsecretVaLuE77")
    assert "HDRsecretVaLuE77" in parts
    assert scrub(
        "json://127.0.0.1:9/?+X-Api=Bearer%20HDRsecretVaLuE77", "401: HDRsecretVaLuE77"
    ) == ("401: ****")
