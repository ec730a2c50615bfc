"""Two simultaneous submits of one link, over real HTTP: the assessment completes once."""

from __future__ import annotations

import http.client
import threading
import urllib.parse

from sqlalchemy import func, select

from pro_service.extensions import db
from pro_service.models import Assessment, AuditEvent, Score

from browser import serve
from pages import csrf_of


def test_two_tabs_submitting_at_once_complete_the_assessment_once(app, link):
    with serve(app) as base:
        port = int(base.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"/q/{link.token}/review")
        response = conn.getresponse()
        cookie = response.getheader("Set-Cookie").split(";", 1)[0]
        body = urllib.parse.urlencode({"csrf_token": csrf_of(response.read().decode())})
        conn.close()
        statuses: list[int] = []
        start = threading.Barrier(4)

        def submit() -> None:
            tab = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            start.wait()
            tab.request(
                "POST",
                f"/q/{link.token}/submit",
                body=body,
                headers={
                    "Cookie": cookie,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            statuses.append(tab.getresponse().status)
            tab.close()

        tabs = [threading.Thread(target=submit) for _ in range(4)]
        for tab in tabs:
            tab.start()
        for tab in tabs:
            tab.join()
    assert statuses == [303, 303, 303, 303]
    with app.app_context():
        assert db.session.get(Assessment, link.assessment_id).status == "completed"
        completions = db.session.scalar(
            select(func.count()).where(AuditEvent.action == "assessment.completed")
        )
        assert completions == 1
        scales = db.session.scalars(
            select(Score.scale).where(Score.assessment_id == link.assessment_id)
        ).all()
        assert len(scales) == len(set(scales)) > 0
