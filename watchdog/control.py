"""The one HTTP client to a running daemon: `status`, ticks asked for by `trip`, `arm` and
`silence`, and `gate --url` (GET /preflight).

Standard library only, and light, because `gate --url` runs before every batch launch: it
speaks HTTP/1.1 over a socket itself instead of loading urllib.request (whose http.client,
email and ssl imports cost several times what Python takes to start), imports ssl only for
https://, and never imports watchdog.config (pydantic). One deadline bounds each request
as a whole, so a daemon that accepts a connection and then stalls, or drips its answer,
cannot hold a caller past it. It follows no redirect and uses no proxy: the token goes to
the daemon named and nowhere else.

Over https:// the daemon's certificate is verified as any HTTPS client does (the system's
CAs, or $SSL_CERT_FILE / $SSL_CERT_DIR, and the URL's host name); a certificate that fails
is a no-go saying why, never a request sent without it. A client of this host's own
daemon may instead pin the certificate the daemon serves (`pin`): it talks to loopback,
which no certificate names.
"""

from __future__ import annotations

import json
import socket
import sys
import time

from watchdog.permit_json import RUNWAY_UNKNOWN, Verdict, echo

# Not `from typing import ...` at run time: `gate --url` would pay for it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_ANSWER_BYTES = 16 * 1024 * 1024
# The numbers of a /preflight answer: each a finite number or null when it is there.
ANSWER_NUMBERS = ("cost", "headroom_usd", "reserved_usd", "runway_days")
TICK_TIMEOUT_S = 10.0  # a tick polls the provider: allow it more than a plain request
# OpenSSL's verify_code for a certificate not for the URL's host: X509_V_ERR_HOSTNAME_
# MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH.
NAME_MISMATCH = (62, 64)
NO_ANSWER = "no answer at all"
SPEAKS_TLS = "it answered in TLS"
PIN_MISMATCH = -1  # ours: the daemon served another certificate than the pinned one
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def base_url(host: str, port: int, scheme: str = "http") -> str:
    """The daemon's URL from server.listen's host and port (and server.scheme: "https"
    with TLS): a daemon listening everywhere (0.0.0.0, ::) is asked on loopback; an IPv6
    address goes in brackets."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


class AuthError(ValueError):
    """The daemon refused the request for its token (HTTP 401/403): a configuration error
    (`gate` exits 2 on it, as on every ValueError of a bad setting)."""


class DaemonClient:
    """Requests to the daemon at `base_url` (http:// or https://, optionally with a path
    prefix), with `token` as the bearer token when not empty, each request done within
    `timeout` seconds. Over https:// the certificate is verified against the system's CAs
    (or $SSL_CERT_FILE) and the URL's host; with `pin` (a PEM file: the daemon's own
    server.tls_cert) only the first certificate in that file is accepted, whatever host
    the URL names. Raise ValueError for a URL or token that cannot be used."""

    def __init__(
        self, base_url: str, token: str = "", timeout: float = 5.0, *, pin: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._tls, self._host, self._port, self._prefix = _split_url(self.base_url)
        self._authority = self.base_url.partition("://")[2].partition("/")[0]
        if any(c < " " or c == "\x7f" for c in token):
            raise ValueError("the daemon's token contains control characters")
        self._token = token
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        self.timeout = timeout
        self._pin = pin

    @property
    def _hint(self) -> str:
        return "" if self._tls else "; if it serves HTTPS, give an https:// URL"

    def __repr__(self) -> str:  # never the token
        return f"DaemonClient({self.base_url!r})"

    def status(self) -> dict[str, Any] | None:
        """The daemon's /status, or None when no daemon answers it with a JSON object."""
        if self._port == 0:
            return None
        try:
            code, body = self._exchange("GET", "/status", self.timeout)
        except (OSError, ValueError):
            return None
        data = _json(body) if code == 200 else None
        return data if isinstance(data, dict) else None

    def request_tick(self, timeout: float | None = None) -> str | None:
        """Ask the daemon to run a tick now and wait for it (at least 10 s, as a tick polls
        the provider). Return None when it did, else a sentence saying why not."""
        if self._port == 0:
            return "server.listen has no fixed port to ask"
        wait = max(self.timeout, TICK_TIMEOUT_S) if timeout is None else timeout
        try:
            code, _ = self._exchange("POST", "/tick", wait)
        except TimeoutError:
            return f"the daemon at {self.base_url} did not finish a tick within {wait:g} s"
        except OSError as exc:
            tls = _tls_problem(f"the daemon at {self.base_url}", exc)
            return tls or f"no daemon answered at {self.base_url}"
        except ValueError:
            return f"no daemon answered at {self.base_url}"
        if code == 200:
            return None
        hint = " (is server.token the daemon's?)" if code in (401, 403) else ""
        return f"the daemon at {self.base_url} answered HTTP {code}{hint}"

    def preflight(
        self, cost: float | None, min_runway_days: float | None, key: str | None = None
    ) -> Verdict:
        """GET /preflight: go only for HTTP 200 with a well-formed JSON object holding
        `"go": true` (no duplicate key, no reasons against it, its numbers finite or null,
        and with `min_runway_days`, a runway_days it gives that is known and not under it).
        409 is no-go with the daemon's reasons; no answer, another status or another body
        is no-go saying so. Raise AuthError for 401/403 (the token is missing or wrong)."""
        query = []
        if cost is not None:
            query.append("cost=" + _quote(repr(float(cost))))
        if min_runway_days is not None:
            query.append("min_runway_days=" + _quote(repr(float(min_runway_days))))
        if key is not None:
            query.append("key=" + _quote(key))
        path = "/preflight" + ("?" + "&".join(query) if query else "")
        where = f"the daemon at {self.base_url}"
        try:
            code, body = self._exchange("GET", path, self.timeout)
        except TimeoutError:
            return Verdict(False, [f"{where} did not answer within {self.timeout:g} s"], None)
        except ConnectionResetError as exc:
            # An https:// daemon asked in plain HTTP resets the connection, closes it or
            # answers a TLS alert (ValueError below): say what to try.
            return Verdict(False, [f"cannot reach {where}: {exc.strerror}{self._hint}"], None)
        except OSError as exc:
            why = _tls_problem(where, exc) or f"cannot reach {where}: {exc.strerror or exc}"
            return Verdict(False, [why], None)
        except ValueError as exc:
            hint = self._hint if str(exc) in (NO_ANSWER, SPEAKS_TLS) else ""
            return Verdict(False, [f"{where} did not answer in HTTP ({exc}){hint}"], None)
        data = _json(body)
        answer = data if isinstance(data, dict) else None
        malformed = data.why if isinstance(data, _Malformed) else None
        if code in (401, 403):
            given = "the token was refused" if self._token else "no token was given"
            raise AuthError(
                f"{where} answered HTTP {code}: {given}; set WATCHDOG_SERVER__TOKEN to the "
                "daemon's server.token"
            )
        reasons = _strings(answer.get("reasons")) if answer is not None else []
        if code == 409:
            return Verdict(False, reasons or [f"{where} says no-go, without a reason"], answer)
        if code != 200:
            error = answer.get("error") if answer is not None else None
            detail = f": {error[:300]}" if isinstance(error, str) else ""
            return Verdict(False, [f"{where} answered HTTP {code}{detail}"], answer)
        if malformed is not None:
            return Verdict(False, [f"{_NOT_WELL_FORMED} ({where}: {malformed})"], None)
        if answer is None:
            return Verdict(False, [f"{where} answered something that is not a JSON object"], None)
        if answer.get("go") is not True:
            said = f'"go": {json.dumps(answer.get("go"))[:40]}' if "go" in answer else 'no "go"'
            return Verdict(False, reasons or [f'{where} answered {said}, not "go": true'], answer)
        problem = _ill_formed(answer)
        if problem is not None:
            return Verdict(False, [f"{_NOT_WELL_FORMED} ({where}: {problem})"], answer)
        if answer.get("reasons"):  # "go": true with reasons against it: a contradiction
            said = f'{where} answered "go": true with reasons against it'
            return Verdict(False, [said, *reasons], answer)
        runway = answer.get("runway_days")
        if min_runway_days is not None and "runway_days" in answer:
            if runway is None:
                return Verdict(False, [RUNWAY_UNKNOWN.format(floor=min_runway_days)], answer)
            if isinstance(runway, float) and runway < min_runway_days:
                said = f"{runway:.1f}" if -1e9 < runway < 1e9 else f"{runway:.2e}"
                return Verdict(
                    False,
                    [f"credit lasts {said} days, under the {min_runway_days:g} asked for"],
                    answer,
                )
        return Verdict(True, [], answer)

    # -- HTTP/1.1, one request per connection ---------------------------------------------

    def _exchange(self, method: str, path: str, timeout: float) -> tuple[int, bytes]:
        """Send one request, return (status code, body). Raise TimeoutError when the
        whole exchange takes longer than `timeout`, OSError when the daemon cannot be
        reached, ValueError when what answers does not speak HTTP."""
        deadline = time.monotonic() + timeout

        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer within {timeout:g} s")
            return remaining

        lines = [
            f"{method} {self._prefix}{path} HTTP/1.1",
            f"Host: {self._authority}",
            "Accept: application/json",
            "User-Agent: budget-watchdog",
            "Connection: close",
        ]
        if method == "POST":
            lines.append("Content-Length: 0")
        if self._token:
            lines.append(f"Authorization: Bearer {self._token}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        # The host as bytes (checked ASCII): a str would load the idna codec, milliseconds.
        address = (self._host.encode("ascii"), self._port)
        sock = socket.create_connection(address, timeout=left())  # type: ignore[arg-type]
        try:
            if self._tls:
                sock = self._wrap(sock)
            sock.settimeout(left())
            sock.sendall(request)
            answer = bytearray()
            while not _complete(answer):
                sock.settimeout(left())
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
                if len(answer) > MAX_ANSWER_BYTES:
                    raise ValueError(f"an answer over {MAX_ANSWER_BYTES // 2**20} MiB")
        finally:
            sock.close()
        if not self._tls and bytes(answer[:2]) in (b"\x15\x03", b"\x16\x03"):
            raise ValueError(SPEAKS_TLS)  # a TLS alert or handshake record
        return _parse_answer(bytes(answer))

    def _wrap(self, sock: socket.socket) -> socket.socket:
        """The TLS side of a connection, its handshake done. Raise ssl.SSLError (an
        OSError) when the daemon's certificate is not accepted."""
        import ssl  # only for https://

        if self._pin is None:
            context = ssl.create_default_context()
            return context.wrap_socket(sock, server_hostname=self._host)
        # Pinned: the chain and the name are not what vouches for the daemon, the exact
        # certificate is (compared after the handshake, before a byte of the request).
        try:
            with open(self._pin, encoding="ascii", errors="replace") as handle:
                pem = handle.read(1024 * 1024)
        except OSError as exc:
            raise ssl.SSLError(f"cannot read {self._pin}: {exc.strerror or exc}") from None
        begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
        first = pem.find(begin)
        last = pem.find(end, first)
        if first < 0 or last < 0:
            raise ssl.SSLError(f"{self._pin} holds no PEM certificate to pin")
        pinned = ssl.PEM_cert_to_DER_cert(pem[first : last + len(end)])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        tls = context.wrap_socket(sock, server_hostname=self._host)
        if tls.getpeercert(binary_form=True) != pinned:
            tls.close()
            error = ssl.SSLCertVerificationError(f"not the certificate in {self._pin}")
            error.verify_message = f"not the certificate in {self._pin}"
            error.verify_code = PIN_MISMATCH
            raise error
        return tls


def _tls_problem(where: str, exc: OSError) -> str | None:
    """What a failed TLS handshake means, for a no-go; None when `exc` is not one."""
    ssl = sys.modules.get("ssl")  # loaded by an https:// request, never for http://
    if ssl is None or not isinstance(exc, ssl.SSLError):
        return None
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
        code = getattr(exc, "verify_code", None)
        if code in NAME_MISMATCH:
            hint = "give --url the host name (or address) its certificate is for"
        elif code == PIN_MISMATCH:
            hint = "another process answers there, or the daemon still serves an old one"
        else:
            hint = (
                "if it is self-signed or from a private CA, point SSL_CERT_FILE at that "
                "certificate (or CA)"
            )
        return f"{where} has a certificate this machine does not accept ({detail}): {hint}"
    detail = getattr(exc, "reason", None) or exc
    return f"the TLS handshake with {where} failed ({detail}): is it serving HTTPS there?"


def shown_url(url: str) -> str:
    """`url` as a message shows it: quoted, without the user:password@ it may hold (up to
    its last "@", even without a scheme), and cut to a sane length."""
    scheme, sep, rest = url.rpartition("://") if "://" in url else ("", "", url)
    if "@" in rest:
        rest = "****@" + rest.rpartition("@")[2]
    return echo(scheme + sep + rest)


def _split_url(url: str) -> tuple[bool, str, int, str]:
    """(https?, host, port, path prefix) of an http(s)://host[:port][/prefix] URL."""
    shown = shown_url(url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise ValueError(f"the daemon's URL must start with http:// or https://, not {shown}")
    tls = scheme.lower() == "https"
    if "@" in rest:
        raise ValueError(
            f"{shown} holds a user:password@: give the token in $WATCHDOG_SERVER__TOKEN"
        )
    if not url.isascii() or any(c <= " " or c == "\x7f" or c in "?#\\" for c in rest):
        raise ValueError(f"{shown} is not a plain http(s)://host:port URL")
    authority, slash, path = rest.partition("/")
    if authority.startswith("["):
        host, bracket, after = authority[1:].partition("]")
        if not bracket or (after and after[0] != ":"):
            raise ValueError(f"{shown} has a bad [IPv6] host")
        has_port, port_text = bool(after), after[1:]
    else:
        host, colon, port_text = authority.partition(":")
        has_port = bool(colon)
    if not host or "[" in host or "]" in host:
        raise ValueError(f"{shown} has no usable host")
    port = 443 if tls else 80
    if has_port:
        if not port_text.isdigit() or int(port_text) > 65535:
            raise ValueError(f"{shown} has a bad port")
        port = int(port_text)
    return tls, host, port, ("/" + path).rstrip("/") if slash else ""


def _complete(answer: bytearray) -> bool:
    """Whether `answer` holds a whole response (by Content-Length or chunked encoding);
    otherwise the daemon's closing the connection ends it."""
    end = answer.find(b"\r\n\r\n")
    if end < 0:
        return False
    length, chunked = _framing(bytes(answer[:end]))
    body = answer[end + 4 :]
    if chunked:
        if not body.endswith(b"\r\n"):
            return False
        try:
            _dechunk(bytes(body))
        except ValueError:
            return False
        return True
    return length is not None and len(body) >= length


def _framing(head: bytes) -> tuple[int | None, bool]:
    """(Content-Length or None, chunked?) from a response head."""
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"transfer-encoding":
            if value.lower() != b"chunked":
                raise ValueError(f"transfer-encoding {value!r}")
            chunked = True
        elif name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise ValueError("a bad content-length")
            length = int(value)
    return length, chunked


def _parse_answer(answer: bytes) -> tuple[int, bytes]:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no complete HTTP answer" if answer else NO_ANSWER)
    version, _, rest = head.split(b"\r\n", 1)[0].partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ValueError("not an HTTP answer")
    length, chunked = _framing(head)
    if chunked:
        return int(code), _dechunk(body)
    if length is not None:
        if len(body) < length:
            raise ValueError("a truncated answer")
        body = body[:length]
    return int(code), body


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise ValueError("a truncated chunked answer")
        size_text = body[pos:end].partition(b";")[0].strip()
        if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
            raise ValueError("a bad chunk size")
        size = int(size_text, 16)
        if size == 0:
            return bytes(out)
        start = end + 2
        if len(body) < start + size + 2 or body[start + size : start + size + 2] != b"\r\n":
            raise ValueError("a truncated chunked answer")
        out += body[start : start + size]
        pos = start + size + 2


_NOT_WELL_FORMED = "the daemon's answer is not well-formed"


class _Malformed:
    """JSON that json.loads would take but a daemon never writes: `why` says what."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


class _Reject(ValueError):
    pass


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """An object's members, refusing a key given twice ({"go": false, "go": true})."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _Reject(f"the key {echo(key)} is given twice")
        out[key] = value
    return out


def _constant(name: str) -> object:
    raise _Reject(f"{name} is not a JSON number")


def _json(body: bytes) -> object:
    """The JSON in `body`; None when there is none, a _Malformed for JSON with a key given
    twice or NaN/Infinity in it."""
    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=_unique, parse_constant=_constant)
    except _Reject as exc:
        return _Malformed(str(exc))
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested too deep
        return None


def _ill_formed(answer: dict[str, object]) -> str | None:
    """What is wrong with a go answer's shape: a number that is not a finite number or
    null, reasons that are not a list. None when nothing is."""
    for name in ANSWER_NUMBERS:
        value = answer.get(name)
        if value is None:
            continue
        if type(value) not in (int, float):
            return f"{name} is {echo(value)}, not a number"
        try:
            number = float(value)  # type: ignore[arg-type]
        except OverflowError:
            number = float("inf")
        if number - number != 0:
            return f"{name} is {echo(value)}, not a finite number"
        answer[name] = number
    reasons = answer.get("reasons")
    if reasons is not None and not isinstance(reasons, list):
        return f"reasons is {echo(reasons)}, not a list"
    return None


def _strings(value: object) -> list[str]:
    """The daemon's reasons: strings only, a sane number of them, each of a sane length."""
    if not isinstance(value, list):
        return []
    return [item[:500] for item in value if isinstance(item, str) and item][:20]


def _quote(text: str) -> str:
    """Percent-encoding for a query value (urllib.parse would cost an import of re)."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode("utf-8"))
