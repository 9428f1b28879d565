"""PII and secret redaction for text on its way to disk: emails, phones, cards, IBANs, IPs, API keys."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"
IBAN = "[IBAN]"
IP = "[IP]"
SECRET = "[SECRET]"


def _gap(excluded: str, width: int = 1) -> str:
    """Placed after a token's first `width` chars: the token must not continue a word (`excluded`).

    Putting a literal or a char class first lets `re` skip ahead to candidate chars in C; a leading
    lookbehind would make it try every position (8x slower). Bodies are JSON text, so a token right
    after an escape (`call\\n555-…`) also counts as starting a word.
    """
    return rf"(?:(?<=\\[nrtbf].{{{width}}})|(?<![\\{excluded}].{{{width}}}))"


_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z ]{0,20} PRIVATE KEY-----.{0,20000}?-----END[A-Z ]{0,20} PRIVATE KEY-----", re.DOTALL
)
_JWT = re.compile(r"eyJ" + _gap(r"\w-", 3) + r"[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"Bearer" + _gap(r"\w-", 6) + r"(\s+)(?=[A-Za-z._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{8,}")
_KEY_END = r"(?![\w-])"
_OPENAI_ANTHROPIC_KEY = re.compile(
    r"sk-" + _gap(r"\w-", 3) + r"(?:ant-|proj-|svcacct-|admin-)?(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{20,}" + _KEY_END
)
_AWS_KEY_ID = re.compile(r"A(?:KIA|SIA|BIA|CCA)" + _gap(r"\w-", 4) + r"[0-9A-Z]{16}" + _KEY_END)
_GITHUB_TOKEN = re.compile(
    r"g(?:h[pousr]_" + _gap(r"\w-", 4) + r"[A-Za-z0-9]{36,}|ithub_pat_" + _gap(r"\w-", 11) + r"[A-Za-z0-9_]{22,})"
    + _KEY_END
)
_SLACK_TOKEN = re.compile(r"xox[abposr]-" + _gap(r"\w-", 5) + r"(?=[A-Za-z-]*[0-9])[A-Za-z0-9-]{10,}" + _KEY_END)
_SECRET_NAMES = (
    "password", "passwd", "secret", "api_key", "api-key", "apikey", "access_token", "accesstoken",
    "auth_token", "authtoken", "refresh_token", "refreshtoken", "private_key", "privatekey",
)  # fmt: skip
# `password: hunter22`, `"api_key": "abc123…"`: keep the name, mask the value.
_ASSIGNED_SECRET = re.compile(
    r"(?i)(?<![\w-])((?:api[_-]?key|(?:client[_-]?)?secret(?:[_-]?key)?|passw(?:or)?d|"
    r"(?:access|auth|refresh)[_-]?token|private[_-]?key)"
    r"\\?[\"']?\s*[:=]\s*\\?[\"']?)(?!\[)([^\s\"'\\,;{}]{6,})"
)
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]" + _gap(r"\w.%+-") + r"[A-Za-z0-9._%+-]{0,63}"
    r"@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}(?![\w-])"
)
_IBAN = re.compile(r"[A-Z]" + _gap(r"\w") + r"[A-Z][0-9]{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?(?!\w)")
# 13-19 digits, contiguous or in the printed groups 4-4-4-4[-3], 4-6-5, 4-6-4; Luhn decides.
# Networks issue numbers starting 2-6 only, which keeps ms/ns timestamps (17…) out.
_CARD = re.compile(
    r"[2-6]" + _gap(r"\w.,-")
    + r"(?:[0-9]{12,18}"
    + r"|[0-9]{3}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{4}(?:\1[0-9]{3})?"
    + r"|[0-9]{3}([ -])[0-9]{6}\2[0-9]{4,5})"
    + r"(?!\w|[.,][0-9]|[ -][0-9])"
)
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6 = re.compile(
    r"[0-9A-Fa-f:]" + _gap(r"\w:.")
    + r"[0-9A-Fa-f]{0,3}:(?:[0-9A-Fa-f]{0,4}:){1,6}"
    + r"(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?(?:%[A-Za-z0-9_.]{1,15})?"
    + r"(?![\w:.])"
)
_IPV4 = re.compile(r"[0-9]" + _gap(r"\w.") + r"[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?!\w|\.[0-9])")
_PHONE = re.compile(
    r"(?:"
    # international: +CC, optional (area), 2-6 groups; the digit count is checked in code
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


def _card(match: re.Match[str]) -> str:
    text = match.group()
    return CARD if luhn_valid(text.replace(" ", "").replace("-", "")) else text


def _iban(match: re.Match[str]) -> str:
    text = match.group()
    # The pattern may swallow a short word after a spaced IBAN ("… 3000 OK"): try shorter prefixes too.
    end = len(text)
    while end >= 15:
        if iban_valid(text[:end]):
            return IBAN + text[end:]
        end = text.rfind(" ", 0, end)
    return text


def _ipv6(match: re.Match[str]) -> str:
    text = match.group()
    try:
        ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        return text
    return IP


def _ipv4(match: re.Match[str]) -> str:
    text = match.group()
    return IP if all(int(octet) <= 255 for octet in text.split(".")) else text


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    if not text.startswith("+"):
        return PHONE
    digits = sum(char.isdigit() for char in text)
    return PHONE if 8 <= digits <= 15 else text


def _has_secret_name(text: str) -> bool:
    lowered = text.lower()
    return any(name in lowered for name in _SECRET_NAMES)


def _has_ipv6_shape(text: str) -> bool:
    return _IPV6_HINT.search(text) is not None


@dataclass(slots=True, frozen=True)
class _Rule:
    applies: Callable[[str], bool] | None  # a cheap test that lets most texts skip the regex
    pattern: re.Pattern[str]
    replacement: str | Callable[[re.Match[str]], str]


# Order matters: secrets first (they contain digit runs), emails next, then the number shapes.
_RULES: tuple[_Rule, ...] = (
    _Rule(lambda text: "PRIVATE KEY-----" in text, _PRIVATE_KEY, SECRET),
    _Rule(lambda text: "eyJ" in text, _JWT, SECRET),
    _Rule(lambda text: "Bearer" in text, _BEARER, "Bearer\\1" + SECRET),
    _Rule(lambda text: "sk-" in text, _OPENAI_ANTHROPIC_KEY, SECRET),
    _Rule(None, _AWS_KEY_ID, SECRET),
    _Rule(lambda text: "gh" in text, _GITHUB_TOKEN, SECRET),
    _Rule(lambda text: "xox" in text, _SLACK_TOKEN, SECRET),
    _Rule(_has_secret_name, _ASSIGNED_SECRET, "\\1" + SECRET),
    _Rule(lambda text: "@" in text, _EMAIL, EMAIL),
    _Rule(None, _IBAN, _iban),
    _Rule(None, _CARD, _card),
    _Rule(_has_ipv6_shape, _IPV6, _ipv6),
    _Rule(None, _IPV4, _ipv4),
    _Rule(None, _PHONE, _phone),
)


def redact(text: str) -> str:
    """Mask PII and secrets in `text` with `[EMAIL]`, `[PHONE]`, `[CARD]`, `[IBAN]`, `[IP]`, `[SECRET]`."""
    for rule in _RULES:
        if rule.applies is None or rule.applies(text):
            text = rule.pattern.sub(rule.replacement, text)
    return text


__all__ = ["CARD", "EMAIL", "IBAN", "IP", "PHONE", "SECRET", "iban_valid", "luhn_valid", "redact"]
