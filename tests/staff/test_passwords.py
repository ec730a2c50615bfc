"""The password rules (NIST SP 800-63B): length, breached and guessable passwords, no
composition rules."""

from __future__ import annotations

import pytest

from pro_service.staff.passwords import PasswordRejected, check_new_password

CONTEXT = ("anna.nurse@upp.example.org", "Anna Nurse")


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "Sommarstugan vid sjön",  # any characters, no capitals or digits required
        "kesämökki järven rannalla",
        "tulip harbour lantern",
        "x7#Lq!9vZ2mK",  # 12 characters is enough when they are not guessable
        # long ones are welcome (up to 256 characters)
        "the ferry to Åland leaves at dawn and the gulls follow it past the last skerry "
        "while the coffee on deck goes cold and nobody minds at all this morning",
    ],
)
def test_long_or_unguessable_passwords_are_accepted(password):
    check_new_password(password, context=CONTEXT)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("elevenchars", "too_short"),
        ("x" * 257, "too_long"),
        ("1234567890ab", "common"),  # on the breached-password list
        ("Password1234", "common"),
        ("qwertyuiop123", "common"),
        ("abcdefghijkl", "guessable"),  # a sequence
        ("aaaaaaaaaaaaaaaa", "guessable"),  # a repeat
        ("AnnaNurse2026", "guessable"),  # the account's own name and a year
        ("anna.nurse.anna.nurse", "guessable"),
        ("ScanPan2026!!", "guessable"),  # the service's own name
    ],
)
def test_short_breached_and_guessable_passwords_are_refused(password, reason):
    with pytest.raises(PasswordRejected) as refused:
        check_new_password(password, context=CONTEXT)
    assert refused.value.reason == reason


def test_the_command_line_refuses_a_common_password_and_creates_nothing(app, runner):
    result = runner.invoke(
        args=["create-user", "--email", "it@example.org", "--role", "admin", "--all-sites"],
        input="Password1234\nPassword1234\n",
    )
    assert result.exit_code == 1
    assert "password: the password is, or is built on, a common or breached password" in (
        result.output
    )
    ok = runner.invoke(
        args=["create-user", "--email", "it@example.org", "--role", "admin", "--all-sites"],
        input="tulip harbour lantern\ntulip harbour lantern\n",
    )
    assert ok.exit_code == 0, ok.output
