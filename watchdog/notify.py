"""Notification delivery through Apprise, and the one way a target URL is shown.

A send either returns or raises DeliveryError with Apprise's own explanation; the outbox
records it and retries. Apprise is imported lazily (inside functions): it loads every
plugin at import, which commands that never notify should not pay for. Sends to different
targets may run in different threads (the courier drains each target on its own).

`describe_target` masks every part of a URL that may carry a credential; check-config,
notify-test, /status, the page and the logs show targets only in that form (metrics label
them by `target_id`, a hash).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

from watchdog.core.messages import plain_text
from watchdog.core.model import Recipient

SEVERITY_TYPE = {"info": "info", "warning": "warning", "critical": "failure"}


class DeliveryError(Exception):
    """A message was not delivered; `message` says why (secrets masked)."""


@dataclass(frozen=True)
class Target:
    """A configured target: its stable id (hash of the URL), URL, masked form, severities."""

    id: str
    url: str
    shown: str
    severities: tuple[str, ...]

    @property
    def recipient(self) -> Recipient:
        """What routing needs (the core never sees the URL)."""
        return Recipient(self.id, self.severities)


def target_id(url: str) -> str:
    """A stable, non-secret id for a target: a hash of its URL."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def make_target(url: str, severities: Sequence[str], shown: str | None = None) -> Target:
    """The one way a Target is built: `shown` is the masked URL (Apprise's privacy form,
    computed here when not given, which imports Apprise)."""
    return Target(
        target_id(url), url, describe_target(url) if shown is None else shown, tuple(severities)
    )


class Transport(Protocol):
    def send(
        self, target: Target, title: str, body: str, severity: str, resolved: bool
    ) -> None: ...


class AppriseTransport:
    """Sends through Apprise; one Apprise object per target, built on first use. Safe to
    use from one thread per target."""

    def __init__(self, timeout: float = 15.0) -> None:
        self._timeout = timeout
        self._objects: dict[str, tuple[Any, Any]] = {}

    def _object(self, target: Target) -> tuple[Any, Any]:
        """The Apprise object for `target`, and its plugin."""
        import apprise

        built = self._objects.get(target.id)
        if built is None:
            plugin = _instantiate(target.url)
            obj = apprise.Apprise()
            if plugin is None or not obj.add(plugin):
                raise DeliveryError("Apprise cannot use this URL")
            built = self._objects[target.id] = (obj, plugin)
        return built

    def send(self, target: Target, title: str, body: str, severity: str, resolved: bool) -> None:
        import apprise

        obj, plugin = self._object(target)
        kind = "success" if resolved else SEVERITY_TYPE.get(severity, "info")
        content, body_format, plain = body, apprise.NotifyFormat.MARKDOWN, None
        email = _email_format(plugin)
        if email == apprise.NotifyFormat.TEXT:
            content, body_format = plain_text(body), apprise.NotifyFormat.TEXT
        elif email == apprise.NotifyFormat.HTML and _plain_part_hook():
            # The HTML Apprise would make, and our own plain-text part beside it: Apprise's
            # HTML-to-text conversion puts inline code on lines of its own.
            from apprise.conversion import markdown_to_html

            content, body_format = markdown_to_html(body), apprise.NotifyFormat.HTML
            plain = plain_text(body)
        try:
            with _PlainPart(content, plain):
                result = obj.notify(
                    body=content, title=title, notify_type=kind, body_format=body_format
                )
        except Exception as exc:  # a plugin bug must not take the loop down
            raise DeliveryError(scrub(target.url, f"{type(exc).__name__}: {exc}")) from None
        if not result:
            raise DeliveryError(scrub(target.url, _why(result)))


# -- e-mail: our own plain-text part ------------------------------------------------------
# Apprise builds an e-mail's text/plain part by converting the HTML part back to text,
# which puts inline code on lines of its own and spaces bullets apart. The hook below
# answers that one conversion with the plain text we made from the Markdown (keyed by the
# HTML it was made for, so concurrent sends never mix them up); anything else is Apprise's.

_plain_lock = threading.Lock()
_plain_by_html: dict[str, str] = {}
_plain_users: Counter[str] = Counter()
_hook_installed: bool | None = None


def _email_format(plugin: Any) -> Any:
    """The format an e-mail plugin sends a Markdown body in (HTML or TEXT); None for a
    plugin that is not e-mail."""
    from apprise import NotifyFormat
    from apprise.plugins.email.base import NotifyEmail

    if not isinstance(plugin, NotifyEmail):
        return None
    resolve = getattr(plugin, "resolve_format", None)
    return resolve(NotifyFormat.HTML) if resolve is not None else NotifyFormat.HTML


def _plain_part_hook() -> bool:
    """Install the hook (once); False when this Apprise builds e-mail differently."""
    global _hook_installed
    with _plain_lock:
        if _hook_installed is None:
            from apprise import NotifyFormat
            from apprise.plugins.email import base

            original = getattr(base, "convert_between", None)
            if original is None:
                _hook_installed = False
            else:

                def convert(from_format: Any, to_format: Any, content: Any) -> Any:
                    if from_format == NotifyFormat.HTML and to_format == NotifyFormat.TEXT:
                        with _plain_lock:
                            plain = _plain_by_html.get(content)
                        if plain is not None:
                            return plain
                    return original(from_format, to_format, content)

                setattr(base, "convert_between", convert)  # noqa: B010 - not exported
                _hook_installed = True
        return _hook_installed


class _PlainPart:
    """While sending `html`, its e-mail's plain-text part is `plain`."""

    def __init__(self, html: str, plain: str | None) -> None:
        self.html, self.plain = html, plain

    def __enter__(self) -> None:
        if self.plain is not None:
            with _plain_lock:
                _plain_by_html[self.html] = self.plain
                _plain_users[self.html] += 1

    def __exit__(self, *exc: object) -> None:
        if self.plain is not None:
            with _plain_lock:
                _plain_users[self.html] -= 1
                if _plain_users[self.html] <= 0:
                    del _plain_users[self.html]
                    _plain_by_html.pop(self.html, None)


def _why(result: Any) -> str:
    try:
        problems = [e.message for e in result.logs() if e.level in ("ERROR", "WARNING")]
    except AttributeError:  # Apprise 1.x returned a bool
        problems = []
    return problems[-1] if problems else "not delivered (no reason given)"


_console_registered = False
_console_lock = threading.Lock()


def register_console() -> None:
    """Register `console://`: an Apprise custom notification that prints the message to
    stderr. The demo uses it to show alerts; it works in any config too."""
    global _console_registered
    with _console_lock:
        if _console_registered:
            return
        from apprise.decorators import notify

        @notify(on="console", name="budget-watchdog console")  # type: ignore[untyped-decorator,no-untyped-call]
        def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
            rule = "─" * min(78, max(len(title), 40))
            print(f"\n{rule}\n{title}\n{rule}\n{body}\n{rule}\n", file=sys.stderr, flush=True)
            return True

        _console_registered = True


def _instantiate(url: str) -> Any:
    import apprise

    register_console()
    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def describe_target(url: str) -> str:
    """Given an Apprise URL, return it with every part that may carry a credential masked:
    the scheme, a real host name (with a dot, an IP address, or localhost) and its port are
    kept; the password (everything between the user name and the last "@" before the host,
    even with an unescaped "?" or "/" in it), a user name that is not a plain word, a "host"
    that is a token (slack://TokenA/…, discord://id/…), every query value whose key is an
    Apprise header, payload or parameter (`+`, `-`, `:`), names a secret (pw, pass, token,
    key, sig, auth, cred, code, hash, …) or that looks like a token become "****". Path
    segments are masked too: for json/xml/form targets (a URL of one's own) all but short
    plain words (`/hooks`, `/v2`), for every other scheme all of them (an ntfy topic, a
    gotify or pushover token, a Telegram chat, a webhook id: the path is the credential)
    except a #channel or @user. Pure: Apprise is not needed to show a URL."""
    return _masked(url)[0]


def secret_parts(url: str) -> list[str]:
    """The parts of `url` that `describe_target` masks (as written and decoded, and each
    piece of them between URL delimiters), longest first: to scrub them from anything else
    said about the target, e.g. an error."""
    return _masked(url)[1]


def scrub(url: str, text: str) -> str:
    """`text` (an error about the target at `url`) without any part of the URL that its
    shown form masks."""
    for part in secret_parts(url):
        text = text.replace(part, MASK)
    return text


MASK = "****"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
# A user name or channel shown as is: lowercase words joined by - _ . (a leading capital
# allowed), a version like v2, or a number of at most three digits.
_PLAIN_WORD = re.compile(
    r"^(?=.{1,24}$)[A-Za-z]?[a-z]{0,12}(?:[-_.][a-z]{1,12})*$|^v\d{1,2}$|^\d{1,3}$"
)
# Schemes whose path is the receiver's own (a URL of one's own server): a short plain
# segment there is a route ("/hooks", "/v2"), not a credential.
_OWN_PATH_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
_SHORT_SEGMENT = re.compile(r"^[a-z0-9-]{1,12}$")
# A channel or user in an Apprise path (#ops, @alice): shown; a phone number (+1555…) is not.
_CHANNEL_SIGILS = "#@"
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_-]{12,}")
_CONSONANT_RUN = re.compile(r"[b-df-hj-np-tv-xz]{5,}")
_QUERY_KEY = re.compile(r"\?[^?=&@]*=")  # "?key=": a query string has begun
_DELIMITERS = re.compile(r"[?&=/:@#\s]|%20")
_SECRET_KEYS = (
    "token",
    "key",
    "secret",
    "pass",
    "pwd",
    "pw",
    "auth",
    "sig",
    "webhook",
    "hook",
    "bearer",
    "cred",
    "session",
    "cookie",
    "private",
    "access",
    "user",
    "login",
    "code",
    "hash",
    "otp",
    "jwt",
    "hmac",
    "license",
    "account",
    "sid",
)


def _plain(text: str) -> bool:
    return bool(_PLAIN_WORD.match(text))


def _tokenish(text: str) -> bool:
    """A run of 12+ word characters mixing letters and digits, or of 24+ of any."""
    for run in _TOKEN_RUN.findall(text):
        if len(run) >= 24 or (re.search(r"\d", run) and re.search(r"[A-Za-z]", run)):
            return True
    return False


def _random_looking(word: str) -> bool:
    """A segment that reads like an id rather than a word: letters mixed with digits (but
    a version, v2), more than three digits, or five consonants in a row."""
    if re.fullmatch(r"v\d{1,2}", word):
        return False
    digits = any(c.isdigit() for c in word)
    letters = any(c.isalpha() for c in word)
    if digits and letters:
        return True
    if digits and sum(c.isdigit() for c in word) > 3:
        return True
    return _CONSONANT_RUN.search(word) is not None


def _shown_segment(scheme: str, segment: str) -> bool:
    """Whether a path segment of a `scheme` URL is shown as is."""
    word = unquote(segment)
    if scheme in _OWN_PATH_SCHEMES:
        return bool(_SHORT_SEGMENT.match(word)) and not _random_looking(word)
    return word[:1] in _CHANNEL_SIGILS and _plain(word[1:])


def _real_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return (
        len(labels) >= 2
        and all(_LABEL.match(label) for label in labels)
        and re.fullmatch(r"[A-Za-z]{2,24}", labels[-1]) is not None
        and not _tokenish(host)
    )


def _userinfo_end(rest: str) -> int:
    """Where the user:password@ of `rest` (the URL after "://") ends: the index of its "@",
    or -1. Found before the query is split off, since a password may hold an unescaped "?"
    (mailtos://bob:abc?def@host): the last "@" before the first "/" whose left side has not
    entered a query string ("?to=ops@example.com" is a query); failing that, the first "@"
    when what comes before the first "?" can only be user:password (a ":" not followed by
    a port number: mailtos://bob:abc?d=e@host)."""
    head = rest.split("/", 1)[0]
    at = head.rfind("@")
    while at >= 0:
        prefix = head[:at]
        _, question, query = prefix.partition("?")
        if not question or ("&" not in query and not _QUERY_KEY.search(prefix)):
            return at
        at = head.rfind("@", 0, at)
    before_query = head.split("?", 1)[0]
    user_password = ":" in before_query and not before_query.split(":", 1)[1].isdigit()
    return head.find("@") if "@" not in before_query and user_password else -1


def _masked(url: str) -> tuple[str, list[str]]:
    """The shown form of `url` and the parts it hides."""
    match = _SCHEME.match(url.strip())
    if match is None:
        return "(not a URL)", [url] if url else []
    scheme, rest = match.groups()
    lower = scheme.lower()
    hidden: list[str] = []

    def hide(part: str) -> str:
        if part:
            hidden.append(part)
        return MASK

    shown = f"{scheme}://"
    at = _userinfo_end(rest)
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, password = userinfo.partition(":")
        plain_user = _plain(unquote(user)) and not any(c in user for c in "?#/&=")
        shown += user if plain_user else hide(user)
        shown += (":" + hide(password) if colon else "") + "@"
    rest, question, query = rest.partition("?")
    hostport, slash, path = rest.partition("/")
    host, port = hostport, ""
    if hostport.startswith("["):  # IPv6
        end = hostport.find("]")
        host, port = hostport[: end + 1], hostport[end + 1 :].removeprefix(":")
    elif ":" in hostport:
        host, _, port = hostport.partition(":")
    if host:
        shown += host if _real_host(host) else hide(host)
    if port:
        shown += ":" + (port if re.fullmatch(r"\d{1,5}", port) else hide(port))
    if slash:
        segments = []
        for segment in path.split("/"):
            shown_as_is = not segment or _shown_segment(lower, segment)
            segments.append(segment if shown_as_is else hide(segment))
        shown += "/" + "/".join(segments)
    if question:
        pairs = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            name = unquote(key).strip()
            secret = name[:1] in ("+", "-", ":") or any(k in name.lower() for k in _SECRET_KEYS)
            if eq and value and (secret or _tokenish(unquote(value))):
                value = hide(value)
            elif not eq and key and (_tokenish(name) or not _plain(name)):
                key = hide(key)
            pairs.append(key + eq + value)
        shown += "?" + "&".join(pairs)
    decoded = [unquote(h) for h in hidden]
    pieces = [p for h in hidden + decoded for p in _DELIMITERS.split(h)]
    parts = {p for p in hidden + decoded + pieces if len(p) >= 4}
    return shown, sorted(parts, key=len, reverse=True)


def url_problem(url: str) -> str | None:
    """Given an Apprise URL, return None when Apprise can use it, else why not."""
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        return "not a URL (expected scheme://…, e.g. slack://… or mailtos://…)"
    if _instantiate(url) is None:
        return "Apprise does not understand this URL (unknown scheme or missing parts)"
    return None
