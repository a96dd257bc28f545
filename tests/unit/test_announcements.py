"""Announcements (otel_health/announcements.py): the Markdown rendered safely, what the API's
write may ask for, and what the store keeps, on a clock the test sets. The served page and the
API's guards are in tests/integration/test_announcements.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_health.announcements import MAX_OPEN, Notices, NotSaved, rendered
from otel_health.server.requests import BadRequest, announcement_request
from tests.harness.clock import SetClock, at

NOW = at("2031-06-01T09:00:00Z")


@pytest.mark.parametrize(("markdown", "html"), [
    ("**bold** and *soft*", "<p><strong>bold</strong> and <em>soft</em></p>\n"),
    ("<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"),
    ('<img src=x onerror="alert(1)">', "<p>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</p>\n"),
    ("[status](https://status.example)", '<p><a href="https://status.example">status</a></p>\n'),
    ("[mail](mailto:ops@example.com)", '<p><a href="mailto:ops@example.com">mail</a></p>\n'),
    ("[x](javascript:alert(1))", "<p>[x](javascript:alert(1))</p>\n"),
    ("[x](ftp://files.example/a)", "<p>[x](ftp://files.example/a)</p>\n"),
    ("![pixel](https://tracker.example/p.gif)", '<p>!<a href="https://tracker.example/p.gif">pixel</a></p>\n'),
])
def test_markdown_is_rendered_with_raw_html_as_text_and_only_safe_links(markdown: str, html: str) -> None:
    assert rendered(markdown) == html


def test_what_a_write_may_ask_for() -> None:
    assert announcement_request({"message": "hi"}, NOW) == ("info", "hi", NOW, None)
    assert announcement_request({"message": "hi", "severity": "outage", "duration": "30m"}, NOW) == (
        "outage", "hi", NOW, NOW + 1800)
    assert announcement_request({"message": "hi", "start": "2031-06-01 12:00", "location": "Europe/Berlin",
                                 "end": "2031-06-01T11:00:00Z"}, NOW)[2:] == (NOW + 3600, NOW + 7200)
    for body, reason in (
        ([], "the body must be a JSON object"),
        ({"message": "hi", "color": "red"}, "unknown field 'color'"),
        ({"message": " "}, "'message' must be Markdown of 1 to 4000 characters"),
        ({"message": "x" * 4001}, "'message' must be Markdown of 1 to 4000 characters"),
        ({"message": "hi", "severity": "critical"}, "'severity' must be one of info, maintenance, warning, outage"),
        ({"message": "hi", "end": "2031-06-01T08:00:00Z"}, "would be over before it is shown"),
        ({"message": "hi", "end": "x", "duration": "1h"}, "give 'duration' or 'end', not both"),
        ({"message": "hi", "location": "Mars/Olympus"}, "unknown time zone"),
    ):
        with pytest.raises(BadRequest, match=reason):
            announcement_request(body, NOW)


async def test_the_store_keeps_a_bounded_number_and_archives_what_ends(tmp_path: Path) -> None:
    clock = SetClock(NOW)
    notices = Notices(tmp_path, days=10, clock=clock)
    first = await notices.add("outage", "one", NOW, None)
    for i in range(MAX_OPEN - 1):
        await notices.add("info", f"n{i}", NOW, NOW + 3600)
    with pytest.raises(NotSaved, match="end one first") as refused:
        await notices.add("info", "too many", NOW, None)
    assert refused.value.full
    assert await notices.end(first.id) and not await notices.end(first.id)
    await notices.add("info", "room again", NOW, None)
    notices.close()
    again = Notices(tmp_path, days=10, clock=clock)
    await again.load()
    kept = {a.message: a for a in again.all()}
    assert len(kept) == MAX_OPEN + 1 and kept["one"].end == pytest.approx(NOW, abs=5) and kept["one"].over(NOW + 6)
    clock.set(NOW + 11 * 86400)  # past history_days: the ended ones go at the next write
    await again.add("info", "later", clock(), None)
    assert sorted(a.message for a in again.all()) == ["later", "room again"]
    again.close()
