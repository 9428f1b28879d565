"""PII and secret redaction for text on its way to disk: emails, phones, cards, IBANs, IPs, API keys."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"
IBAN = "[IBAN]"
IP = "[IP]"
SECRET = "[SECRET]"

# Speed notes (CPython `re` has no DFA): a pattern that starts with a literal is found with a fast
# C search; one that starts with a char class is tried at each matching char; one that starts with a
# lookbehind is tried at every position (~8x slower). So every pattern starts with a literal or a
# class, checks "not inside a word" right after it (`_gap`), and most run only when a cheap test says
# the text can contain a match.


def _gap(excluded: str, width: int = 1) -> str:
    """After a token's first `width` chars: the char before the token is not in `excluded`.

    Bodies are JSON text, so a token right after an escape (`call\\n555-…`) also counts as a start.
    """
    return rf"(?:(?<=\\[nrtbf].{{{width}}})|(?<![\\{excluded}].{{{width}}}))"


_KEY_END = r"(?![\w-])"
_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z ]{0,20} PRIVATE KEY-----.{0,20000}?-----END[A-Z ]{0,20} PRIVATE KEY-----", re.DOTALL
)
_JWT = re.compile(r"eyJ" + _gap(r"\w-", 3) + r"[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
# HTTP auth: keep the scheme, mask the credentials (which must hold a digit or '=': not "Basic rules").
_HTTP_AUTH = re.compile(
    r"([Bb]earer" + _gap(r"\w-", 6) + r"\s+)(?=[A-Za-z._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{8,}"
    r"|([Bb]asic" + _gap(r"\w-", 5) + r"\s+)(?=[A-Za-z+/]*[0-9=])[A-Za-z0-9+/]{8,}={0,2}"
)
_OPENAI_ANTHROPIC_KEY = re.compile(
    r"sk-" + _gap(r"\w-", 3) + r"(?:ant-|proj-|svcacct-|admin-)?(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{20,}" + _KEY_END
)
_AWS_KEY_ID = re.compile(r"A(?:KIA|SIA|BIA|CCA)" + _gap(r"\w-", 4) + r"[0-9A-Z]{16}" + _KEY_END)
_GITHUB_TOKEN = re.compile(
    r"g(?:h[pousr]_" + _gap(r"\w-", 4) + r"[A-Za-z0-9]{36,}|ithub_pat_" + _gap(r"\w-", 11) + r"[A-Za-z0-9_]{22,})"
    + _KEY_END
)
_SLACK_TOKEN = re.compile(r"xox[abposr]-" + _gap(r"\w-", 5) + r"(?=[A-Za-z-]*[0-9])[A-Za-z0-9-]{10,}" + _KEY_END)

# `password: hunter22`, `"api_key": "abc123…"`, `PASSWORD=…`: keep the name, mask the value (group 1).
# Matched on the lower-cased text, each pattern anchored on a literal found by a fast search.
_ASSIGNED_VALUE = r"\\?[\"']?\s*[:=]\s*\\?[\"']?(?!\[)([^\s\"'\\,;{}]{6,})"
_ASSIGNED_SECRETS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("passw", re.compile(r"passw(?:or)?d" + _ASSIGNED_VALUE)),
    ("secret", re.compile(r"secret(?:[_-]?key)?" + _ASSIGNED_VALUE)),
    ("key", re.compile(r"key(?:(?<=api.key)|(?<=apikey)|(?<=private.key)|(?<=privatekey))" + _ASSIGNED_VALUE)),
    (
        "token",
        re.compile(
            r"token(?:(?<=access.token)|(?<=accesstoken)|(?<=auth.token)|(?<=authtoken)"
            r"|(?<=refresh.token)|(?<=refreshtoken))" + _ASSIGNED_VALUE
        ),
    ),
)

_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]" + _gap(r"\w.%+-") + r"[A-Za-z0-9._%+-]{0,63}"
    r"@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}(?![\w-])"
)
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6 = re.compile(
    r"[0-9A-Fa-f:]" + _gap(r"\w:.")
    + r"[0-9A-Fa-f]{0,3}:(?:[0-9A-Fa-f]{0,4}:){0,6}"
    + r"(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?(?:%[A-Za-z0-9_.]{1,15})?"
    + r"(?![\w:.])"
)

# IBANs, IPv4, cards and phones are all made of these chars: one scan finds the runs worth a closer look.
_NUMBER_RUN = re.compile(r"[+(0-9A-Z][0-9A-Z ().+-]{6,}")
_IBAN = re.compile(r"[A-Z]" + _gap(r"\w") + r"[A-Z][0-9]{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?(?!\w)")
_IPV4 = re.compile(r"[0-9]" + _gap(r"\w.") + r"[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?!\w|\.[0-9])")
# 13-19 digits, contiguous or in the printed groups 4-4-4-4[-3], 4-6-5, 4-6-4; Luhn decides.
# Networks issue numbers starting 2-6 only, which keeps ms/ns timestamps (17…) out.
_CARD = re.compile(
    r"[2-6]" + _gap(r"\w.,-")
    + r"(?:[0-9]{12,18}"
    + r"|[0-9]{3}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{4}(?:\1[0-9]{3})?(?!\1[0-9])"  # not a prefix of more groups
    + r"|[0-9]{3}([ -])[0-9]{6}\2[0-9]{4,5}(?!\2[0-9]))"
    + r"(?!\w|[.,][0-9])"
)
_PHONE = re.compile(
    r"(?:"
    # international: +CC, optional (area), 2-6 groups; the digit count (8-15, E.164) is checked in code
    + r"\+" + _gap(r"\w.+-") + r"[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,5}(?:[ .-]?[0-9]{1,5}){1,5}"
    # North American: (AAA) EEE-NNNN, AAA-EEE-NNNN, AAA.EEE.NNNN, AAA EEE NNNN, optional leading 1
    + r"|\(" + _gap(r"\w.+-") + r"[2-9][0-9]{2}\)[ ]?[0-9]{3}[ .-][0-9]{4}"
    + r"|[1-9]" + _gap(r"\w.+-")
    + r"(?:(?<=1)[ .-]?(?:\([2-9][0-9]{2}\)[ ]?[0-9]{3}[ .-]|[2-9][0-9]{2}([ .-])[0-9]{3}\1)"
    + r"|(?<=[2-9])[0-9]{2}([ .-])[0-9]{3}\2)[0-9]{4}"
    + r")(?![\w+]|[.-][0-9])"
)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every card network uses."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616: move the first four chars to the end, letters to 10..35, and check mod 97 == 1."""
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34 or not compact.isalnum() or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _iban(match: re.Match[str]) -> str:
    text = match.group()
    # The pattern may swallow a short word after a spaced IBAN ("… 3000 OK"): try shorter prefixes too.
    end = len(text)
    while end >= 15:
        if iban_valid(text[:end]):
            return IBAN + text[end:]
        end = text.rfind(" ", 0, end)
    return text


def _ipv4(match: re.Match[str]) -> str:
    text = match.group()
    return IP if all(int(octet) <= 255 for octet in text.split(".")) else text


def _card(match: re.Match[str]) -> str:
    text = match.group()
    return CARD if luhn_valid(text.replace(" ", "").replace("-", "")) else text


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    if not text.startswith("+"):
        return PHONE
    digits = sum(char.isdigit() for char in text)
    return PHONE if 8 <= digits <= 15 else text


def _ipv6(match: re.Match[str]) -> str:
    text = match.group()
    try:
        ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        return text
    return IP if any(char.isalnum() for char in text) else text  # a bare "::" is punctuation


_Replace = Callable[[re.Match[str]], str]
# (can the run hold one?, pattern, replace) in priority order: an IBAN holds card-shaped digit groups.
_NUMBER_RULES: tuple[tuple[Callable[[str], bool], re.Pattern[str], _Replace], ...] = (
    (lambda run: len(run) >= 15, _IBAN, _iban),
    (lambda run: run.count(".") >= 3, _IPV4, _ipv4),
    (lambda run: len(run) >= 13, _CARD, _card),
    (lambda run: len(run) >= 9, _PHONE, _phone),
)


def _splice(text: str, replacements: Iterable[tuple[int, int, str]]) -> str:
    """Apply non-overlapping (start, end, new) replacements; later ones overlapping earlier ones lose."""
    pieces: list[str] = []
    last = 0
    for start, end, new in sorted(replacements):
        if start < last:
            continue
        pieces += (text[last:start], new)
        last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _redact_numbers(text: str) -> str:
    found: list[tuple[int, int, str]] = []
    for run in _NUMBER_RUN.finditer(text):
        # Two chars of lookahead past the run (patterns look at most that far), none cut off behind.
        start, end, chars = run.start(), min(len(text), run.end() + 2), run.group()
        claimed: list[tuple[int, int]] = []
        for may_hold, pattern, replace in _NUMBER_RULES:
            if not may_hold(chars):
                continue
            for match in pattern.finditer(text, start, end):
                if any(s < match.end() and match.start() < e for s, e in claimed):
                    continue
                new = replace(match)
                if new != match.group():
                    claimed.append(match.span())
                    found.append((match.start(), match.end(), new))
    return _splice(text, found) if found else text


def _redact_assigned_secrets(text: str) -> str:
    lowered = text.lower()
    if len(lowered) != len(text):  # a few non-ASCII chars lower-case to two; stay case-sensitive then
        lowered = text
    found = [
        (*match.span(1), SECRET)
        for needle, pattern in _ASSIGNED_SECRETS
        if needle in lowered
        for match in pattern.finditer(lowered)
    ]
    return _splice(text, found) if found else text


def _redact_ipv6(text: str) -> str:
    return _IPV6.sub(_ipv6, text) if _IPV6_HINT.search(text) else text


def _redact_emails(text: str) -> str:
    # The pattern starts with a class that matches most chars, so only look around each '@'.
    found: list[tuple[int, int, str]] = []
    previous, at = -1, text.find("@")
    while at != -1:
        following = text.find("@", at + 1)
        # An address holds one '@': the window stops at the neighbours, which keeps "a@a@a@…" linear.
        window_end = at + 300 if following == -1 else min(at + 300, following)
        for match in _EMAIL.finditer(text, max(previous + 1, at - 64), window_end):
            if match.start() <= at < match.end():
                found.append((match.start(), match.end(), EMAIL))
                break
        previous, at = at, following
    return _splice(text, found) if found else text


def _http_auth(text: str) -> str:
    if "earer" not in text and "asic" not in text:
        return text
    return _HTTP_AUTH.sub(lambda match: (match.group(1) or match.group(2)) + SECRET, text)


def _sub(needle: str | None, pattern: re.Pattern[str], replacement: str) -> Callable[[str], str]:
    if needle is None:
        return lambda text: pattern.sub(replacement, text)
    return lambda text: pattern.sub(replacement, text) if needle in text else text


# Order matters: secrets first (they hold digit runs and '@'), then emails, then the number shapes.
_STEPS: tuple[Callable[[str], str], ...] = (
    _sub("PRIVATE KEY-----", _PRIVATE_KEY, SECRET),
    _sub("eyJ", _JWT, SECRET),
    _http_auth,
    _sub("sk-", _OPENAI_ANTHROPIC_KEY, SECRET),
    _sub(None, _AWS_KEY_ID, SECRET),
    _sub(None, _GITHUB_TOKEN, SECRET),
    _sub("xox", _SLACK_TOKEN, SECRET),
    _redact_assigned_secrets,
    _redact_emails,
    _redact_ipv6,
    _redact_numbers,
)


def redact(text: str) -> str:
    """Mask PII and secrets in `text` with `[EMAIL]`, `[PHONE]`, `[CARD]`, `[IBAN]`, `[IP]`, `[SECRET]`."""
    for step in _STEPS:
        text = step(text)
    return text


__all__ = ["CARD", "EMAIL", "IBAN", "IP", "PHONE", "SECRET", "iban_valid", "luhn_valid", "redact"]
