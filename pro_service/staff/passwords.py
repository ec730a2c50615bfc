"""What a staff password must be: NIST SP 800-63B, section 5.1.1.2.

At least 12 characters (and at most 256, so a pasted passphrase fits), any characters, no
composition rules ("one digit, one capital"), and never a password that attackers try first:
one on the common and breached password list of zxcvbn (the 30,000 most frequent passwords of
published breaches), or one that zxcvbn's estimator finds easy to guess from such lists,
dictionary words, names, keyboard patterns, dates, repeats or the account's own email and name.
zxcvbn score 3 ("safely unguessable": about 10^8 guesses) is the bar, against a slow hash
(argon2id) as here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from zxcvbn import zxcvbn

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
#: zxcvbn's score from which a password is accepted (0-4).
MIN_SCORE = 3
#: zxcvbn estimates at most 72 characters; of a longer passphrase, its first 72 are estimated
#: (one that is easy to guess in its first 72 characters is refused).
_ESTIMATED_LENGTH = 72


class PasswordRejected(ValueError):
    """A new password refused; ``reason``: too_short, too_long, common or guessable."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def _words(values: Iterable[str]) -> list[str]:
    """The account's own words (email parts, names) that a password must not lean on."""
    words: list[str] = []
    for value in values:
        words.extend(w for w in re.split(r"[^\w]+", value.lower()) if len(w) >= 3)
    return words


#: Words of the service itself that a password must not be built on.
SERVICE_WORDS = ("pro-service", "scanpan", "password", "lösenord", "salasana")
#: Letters a password must keep once the account's own words and all digits and marks are
#: taken out: "AnnaNurse2026" for anna.nurse@... keeps none.
_MIN_OWN_LETTERS = 4


def _built_on(password: str, words: list[str]) -> bool:
    """Whether ``password`` is little more than ``words``, digits and punctuation."""
    rest = re.sub(r"[\W\d_]+", "", password.lower())
    for word in sorted(set(words), key=len, reverse=True):
        rest = rest.replace(re.sub(r"[\W\d_]+", "", word), "")
    return len(rest) < _MIN_OWN_LETTERS


def check_new_password(password: str, *, context: Iterable[str] = ()) -> None:
    """Raise :class:`PasswordRejected` unless ``password`` may be a staff password.

    ``context``: the account's email, display name and the like, which make a password easy
    to guess for anyone who knows the person.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordRejected(
            "too_short", f"a password needs at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordRejected(
            "too_long", f"a password may have at most {MAX_PASSWORD_LENGTH} characters"
        )
    words = _words((*context, *SERVICE_WORDS))
    result = zxcvbn(password[:_ESTIMATED_LENGTH], user_inputs=words)
    if result["score"] >= MIN_SCORE and not _built_on(password, words):
        return
    from_list = any(
        match.get("dictionary_name") == "passwords" for match in result.get("sequence", ())
    )
    if result["score"] < MIN_SCORE and from_list:
        raise PasswordRejected(
            "common", "the password is, or is built on, a common or breached password"
        )
    raise PasswordRejected(
        "guessable",
        "the password is easy to guess (common words, names, dates, keyboard patterns, "
        "repeats or the account's own name)",
    )
