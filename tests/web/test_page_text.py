"""Page text in templates: translated in the page's language, placeholders filled and escaped."""

from __future__ import annotations

import pytest
from flask import g, render_template_string


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("sv", "Sida 2 av &lt;b&gt;15&lt;/b&gt; | ungefär 1 minut | ungefär 12 minuter"),
        ("fi", "Sivu 2/&lt;b&gt;15&lt;/b&gt; | noin 1 minuutin | noin 12 minuuttia"),
        ("en", "Page 2 of &lt;b&gt;15&lt;/b&gt; | about 1 minute | about 12 minutes"),
    ],
)
def test_template_strings_are_translated_filled_in_and_escaped(app, language, expected):
    source = (
        "{{ _('Page %(number)s of %(total)s', number=2, total='<b>15</b>') }} | "
        "{{ ngettext('about %(num)s minute', 'about %(num)s minutes', 1) }} | "
        "{% trans num=12 %}about {{ num }} minute{% pluralize %}about {{ num }} minutes"
        "{% endtrans %}"
    )
    with app.test_request_context("/"):
        g.explicit_language = language  # as the language switch sets it
        page = render_template_string(source)
    assert expected in page
