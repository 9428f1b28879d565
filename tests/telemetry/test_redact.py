"""PII and secret redaction: what is masked, and — as important — what is left alone."""

from __future__ import annotations

import json
import time

import pytest

from sluice.telemetry.redact import iban_valid, luhn_valid, redact


def masked(text: str, token: str) -> None:
    assert redact(text) == token, f"{text!r} -> {redact(text)!r}"


def kept(text: str) -> None:
    assert redact(text) == text, f"{text!r} -> {redact(text)!r}"


# --- emails -------------------------------------------------------------------------------------

@pytest.mark.parametrize("email", [
    "jane.doe@example.com", "a+tag@sub.example.co.uk", "JOHN_SMITH@EXAMPLE.ORG", "x@y.io",
    "first.last-99@mail.server-1.example.travel",
])
def test_emails_are_masked(email: str) -> None:
    masked(email, "[EMAIL]")
    assert redact(f"write to {email}, thanks") == "write to [EMAIL], thanks"


@pytest.mark.parametrize("text", [
    "user@localhost", "@channel please look", "foo@bar", "pip install pkg@2.0", "a @ b.com", "x@1.2",
])
def test_at_signs_that_are_not_addresses_stay(text: str) -> None:
    kept(text)


def test_an_email_right_after_a_json_escape_is_found_without_eating_the_escape() -> None:
    body = json.dumps({"content": "line one\nmail: me@x.io\tthanks"})
    assert redact(body) == json.dumps({"content": "line one\nmail: [EMAIL]\tthanks"})


def test_many_at_signs_stay_linear() -> None:
    started = time.perf_counter()
    redact("a@" * 50_000)
    assert time.perf_counter() - started < 2  # quadratic scanning would take minutes


# --- phone numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize("phone", [
    "+1 202-555-0143", "+44 20 7946 0958", "+33 1 23 45 67 89", "+49 (0)30 123456", "+8613800138000",
    "+1 (555) 123-4567", "(202) 555-0143", "202-555-0143", "202.555.0143", "202 555 0143", "1-800-555-0199",
    "+91-98765-43210",
])
def test_phone_numbers_are_masked(phone: str) -> None:
    masked(phone, "[PHONE]")
    assert redact(f"call {phone} today") == "call [PHONE] today"


def test_a_phone_after_a_json_newline_escape_is_masked() -> None:
    assert redact(json.dumps("call me\n555-123-4567")) == json.dumps("call me\n[PHONE]")


@pytest.mark.parametrize("text", [
    "in 2024 we grew 12%", "from 1999-2024", "pi is 3.14159265358979", "unix 1718900000",
    "ms 1718900000123", "2024-06-15T10:30:00+05:30", "at 10:30:45", "order ORD-2024-000123",
    "3 apples and 5 pears", "score +5 and +1234", "x+12345678901", "123-456-7890",
    "version 2.10.3", "1,234,567.89 USD", "price 49.99", "2+2=4",
])
def test_numbers_that_are_not_phones_stay(text: str) -> None:
    kept(text)


# --- cards ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("card", [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",  # Visa
    "5555555555554444", "2223003122003222",  # Mastercard (5x and 2x ranges)
    "3782 822463 10005", "378282246310005",  # Amex, printed 4-6-5
    "6011111111111117", "3056 930902 5904",  # Discover, Diners 4-6-4
    "4222222222222",  # 13-digit Visa
    "6011 0009 9013 9424 124",  # 19 digits, 4-4-4-4-3
])
def test_luhn_valid_card_numbers_are_masked(card: str) -> None:
    assert luhn_valid(card.replace(" ", "").replace("-", ""))
    masked(card, "[CARD]")
    assert redact(f"paid with {card}.") == "paid with [CARD]."


@pytest.mark.parametrize("text", [
    "4111111111111112",  # Luhn-invalid
    "4111 1111 1111 1112",
    "1234567890123452",  # Luhn-valid, but no network issues numbers starting with 1 (ids, timestamps)
    "9999999999999995",
    "order 4111111111111111x",  # glued to a word: an identifier
    "ref ORD-4111111111111111",  # part of a dashed id
    "41111111111111111111111",  # 23 digits: too long
    "0.4111111111111111",  # digits of a decimal
    "1 2 3 4 5 6 7 8 9 0 1 2 3",  # a list of small numbers
])
def test_numbers_that_are_not_cards_stay(text: str) -> None:
    kept(text)


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


# --- IBANs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("iban", [
    "DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "GB82WEST12345698765432",
    "GB82 WEST 1234 5698 7654 32", "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300",
    "BE68539007547034",
])
def test_valid_ibans_are_masked(iban: str) -> None:
    assert iban_valid(iban)
    masked(iban, "[IBAN]")


def test_a_spaced_iban_followed_by_a_short_word_keeps_the_word() -> None:
    assert redact("send to DE89 3704 0044 0532 0130 00 OK?") == "send to [IBAN] OK?"


@pytest.mark.parametrize("text", [
    "DE89 3704 0044 0532 0130 01",  # check digits do not match
    "GB00WEST12345698765432",
    "AB12CDEF34GH56IJ78",  # IBAN-shaped product code
    "SKU12ABCD1234EFGH",
])
def test_iban_shaped_strings_failing_mod_97_stay(text: str) -> None:
    kept(text)


# --- IP addresses -----------------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "192.168.1.20", "10.0.0.1", "8.8.8.8", "255.255.255.255", "2001:db8::8a2e:370:7334", "::1",
    "fe80::1%eth0", "::ffff:192.0.2.1", "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "1.2.3.4",  # a dotted quad in range IS an address, even when someone meant a version
])
def test_ip_addresses_are_masked(address: str) -> None:
    masked(address, "[IP]")


def test_addresses_inside_urls_and_with_ports_are_masked() -> None:
    assert redact("GET http://10.1.2.3:8080/health") == "GET http://[IP]:8080/health"
    assert redact("peer [2001:db8::1]:443 up") == "peer [[IP]]:443 up"


@pytest.mark.parametrize("text", [
    "999.1.1.1", "256.1.1.1", "1.2.3", "v1.2.3.4", "1.2.3.4.5", "at 12:30:45", "std::vector<int>",
    "Foo::Bar::baz", "mac 00:1A:2B:3C:4D:5E", "a :: b", "ratio 16:9", "python3.11.2.1",
])
def test_things_that_are_not_ip_addresses_stay(text: str) -> None:
    kept(text)


# --- secrets ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("secret", [
    "sk-proj-abc123DEF456ghi789JKL012mnoPQR345",
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv-123_xyz",
    "sk-" + "a1B2c3D4" * 6,  # legacy 48-char OpenAI key
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "a1B2c3" * 6,
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
])
def test_api_keys_and_tokens_are_masked(secret: str) -> None:
    masked(secret, "[SECRET]")
    assert redact(f'{{"key": "{secret}"}}') == '{"key": "[SECRET]"}'


def test_bearer_tokens_keep_the_scheme() -> None:
    assert redact("Authorization: Bearer abc.def-123456789") == "Authorization: Bearer [SECRET]"


def test_a_private_key_block_is_masked_whole() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc==\n-----END RSA PRIVATE KEY-----"
    assert redact(f"key:\n{pem}\ndone") == "key:\n[SECRET]\ndone"


@pytest.mark.parametrize(("text", "expected"), [
    ('{"password": "hunter22"}', '{"password": "[SECRET]"}'),
    ('{"api_key":"abcdef123"}', '{"api_key":"[SECRET]"}'),
    ("PASSWORD=s3cretpw", "PASSWORD=[SECRET]"),
    ("db_password: correct-horse", "db_password: [SECRET]"),
    ("client_secret = 'q1w2e3r4'", "client_secret = '[SECRET]'"),
    ('{\\"accessToken\\": \\"tok_123456\\"}', '{\\"accessToken\\": \\"[SECRET]\\"}'),
])
def test_values_assigned_to_secret_names_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "sk-learn-is-a-great-library-name-here", "task-force-meeting-notes-for-2024", "risk-assessment",
    '{"max_tokens": 256, "temperature": 0.7}', "The bearer of this letter", "password is required",
    "password: abc", "the secretary: John", "monkey: banana-bread", "tokenizer: cl100k_base",
    "eyJ alone", "AKIA-not-a-key",
])
def test_secret_lookalikes_stay(text: str) -> None:
    kept(text)


# --- the whole function -------------------------------------------------------------------------

def test_a_chat_request_body_is_redacted_in_place_and_stays_valid_json() -> None:
    body = json.dumps({
        "model": "llama-3.1-8b", "max_tokens": 256, "temperature": 0.7, "stream": True,
        "messages": [
            {"role": "system", "content": "Today is 2024-06-15. Be brief."},
            {"role": "user", "content": "I'm jane@example.com, +44 20 7946 0958, card 4111-1111-1111-1111,\n"
                                        "IBAN GB82 WEST 1234 5698 7654 32, my server is 10.0.0.7 and my key "
                                        "is sk-proj-abc123DEF456ghi789JKL012mno. Order 12345 costs 49.99."},
        ],
    })
    parsed = json.loads(redact(body))
    assert parsed["messages"][1]["content"] == (
        "I'm [EMAIL], [PHONE], card [CARD],\nIBAN [IBAN], my server is [IP] and my key is [SECRET]. "
        "Order 12345 costs 49.99."
    )
    assert parsed["messages"][0]["content"] == "Today is 2024-06-15. Be brief."
    assert parsed["max_tokens"] == 256


def test_redaction_is_idempotent() -> None:
    text = "jane@example.com +1 202-555-0143 4111111111111111 10.0.0.1 password: hunter22 AKIAIOSFODNN7EXAMPLE"
    once = redact(text)
    assert redact(once) == once
    assert "[EMAIL]" in once and "[PHONE]" in once and "[CARD]" in once and "[IP]" in once


def test_plain_prose_and_unicode_pass_through_untouched() -> None:
    kept("Grüße aus Köln! 你好，世界。 Ünïcödé text with no personal data, 3 items, 2.5 kg.")
    kept("")


@pytest.mark.parametrize("pathological", ["1 " * 50_000, "(" * 100_000, "a" * 100_000, "1.2." * 30_000,
                                          "ab:" * 30_000, "9" * 100_000, "A1 " * 30_000])
def test_pathological_inputs_finish_quickly(pathological: str) -> None:
    started = time.perf_counter()
    redact(pathological)
    assert time.perf_counter() - started < 2


def test_a_card_followed_by_another_number_is_still_masked() -> None:
    assert redact("4111111111111111 10 times") == "[CARD] 10 times"
    assert redact("4111 1111 1111 1111 5555") == "4111 1111 1111 1111 5555"  # a longer digit group run


@pytest.mark.parametrize("text", [
    "id 123e4567-e89b-12d3-a456-426614174000", "sha a3f5c9e2b1d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2",
    "color #ff0000", "took 00:00:01.500", "[1718900000, 1718900001, 1718900002]",
    "blob aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgZW5jb2RlZCBkYXRh==", "ISBN 978-3-16-148410-0",
    "lat 52.520008, lon 13.404954", "build 20240615.1", "ts=1718900000.123456", "port 5432:5432",
])
def test_common_identifiers_and_measurements_stay(text: str) -> None:
    kept(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("tel:+14155552671", "tel:[PHONE]"), ("mailto:bob@example.com", "mailto:[EMAIL]"),
    ("ip=192.168.0.1;", "ip=[IP];"), ('"+1 415 555 2671"', '"[PHONE]"'),
])
def test_values_inside_uris_and_assignments_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("authorization: bearer tok_12345678", "authorization: bearer [SECRET]"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [SECRET]"),
    ("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l1", "Authorization: Basic [SECRET]"),
])
def test_http_credentials_keep_their_scheme(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", ["Basic information about llamas", "basic arithmetic and bearer bonds"])
def test_the_words_basic_and_bearer_in_prose_stay(text: str) -> None:
    kept(text)
