"""The unmodified official Segment Python SDK, pointed at Unavoce by its host alone."""

import datetime

import pytest
from segment.analytics import Client

from conftest import WRITE_KEY


def send_every_call_type(client, n):
    """Sends n rounds of all six calls; returns {messageId: type}."""
    sent = {}
    at = datetime.datetime(2024, 5, 1, 9, 30, tzinfo=datetime.timezone.utc)
    for i in range(n):
        user, anon = f"user-{i}", f"anon-{i}"
        calls = [
            ("page", client.page(anonymous_id=anon, category="Shop", name="Pricing",
                                 properties={"path": "/pricing"},
                                 context={"touchpoint": "web-shop"})),
            ("identify", client.identify(user, {"email": f"user{i}@example.com", "plan": "fibra"},
                                         anonymous_id=anon, timestamp=at)),
            ("alias", client.alias(previous_id=anon, user_id=user)),
            ("track", client.track(user, "Order Completed",
                                   {"revenue": 19.9 + i, "currency": "EUR"},
                                   context={"touchpoint": "store-rome-01", "channel": "store"})),
            ("screen", client.screen(user, category="Account", name="Consumption")),
            ("group", client.group(user, f"household-{i % 7}", {"name": "Rossi family"})),
        ]
        for kind, (ok, message) in calls:
            assert ok, f"the SDK refused to queue a {kind} call"
            sent[message["messageId"]] = kind
    return sent


@pytest.mark.parametrize("gzip", [True, False])
def test_sdk_batches_every_call_type_and_all_arrive_once(server, gzip):
    errors = []
    client = Client(WRITE_KEY, host=server.base, gzip=gzip, max_retries=3,
                    on_error=lambda error, batch: errors.append(error),
                    upload_size=100)
    sent = send_every_call_type(client, 60)  # 360 messages: several batches
    client.flush()
    client.join()
    assert errors == [], f"the SDK reported errors: {errors}"

    events = server.all_events()
    by_id = {}
    for event in events:
        assert event["messageId"] not in by_id, f"{event['messageId']} stored twice"
        by_id[event["messageId"]] = event
    missing = set(sent) - set(by_id)
    assert not missing, f"{len(missing)} messages sent by the SDK were not stored"
    for message_id, kind in sent.items():
        assert by_id[message_id]["type"] == kind
    stats = server.admin_get("/api/stats")
    assert stats["events"] == len(sent)
    assert stats["quarantined"] == 0

    # What the SDK said is kept, and the server added what it knows.
    track = next(e for e in events if e["type"] == "track")
    assert track["context"]["library"]["name"] == "analytics-python"
    assert track["context"]["touchpoint"] == "store-rome-01"
    assert track["context"]["channel"] == "store"
    assert track["properties"]["currency"] == "EUR"
    assert "receivedAt" in track and "writeKey" not in track
    page = next(e for e in events if e["type"] == "page")
    assert page["context"]["channel"] == "web"
    identify = next(e for e in events if e["type"] == "identify")
    assert identify["originalTimestamp"] == "2024-05-01T09:30:00Z"
    assert identify["traits"]["plan"] == "fibra"


def test_sdk_retries_are_stored_once(server):
    client = Client(WRITE_KEY, host=server.base, sync_mode=True)
    ok, message = client.track("user-1", "Case Opened", {"case_id": "C-1"}, message_id="retry-1")
    assert ok
    ok, again = client.track("user-1", "Case Opened", {"case_id": "C-1"}, message_id="retry-1")
    assert ok
    events = server.all_events()
    assert [e["messageId"] for e in events] == ["retry-1"]
    assert server.admin_get("/api/stats")["duplicates"] == 1


def test_a_wrong_write_key_is_reported_to_the_sdk(server):
    errors = []
    client = Client("not-the-key", host=server.base, max_retries=0,
                    on_error=lambda error, batch: errors.append(error))
    client.track("user-1", "Viewed")
    client.flush()
    client.join()
    assert errors, "the SDK should have been told the key is wrong"
    assert "invalid_write_key" in str(errors[0]) or "401" in str(errors[0])
    assert server.admin_get("/api/stats")["events"] == 0
