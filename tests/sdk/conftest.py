"""A real `unavoce serve` process for the SDK tests."""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

WRITE_KEY = "sdk-test-write-key-000001"
ADMIN_KEY = "sdk-test-admin-key-000001"


class Server:
    def __init__(self, base):
        self.base = base

    def admin_get(self, path):
        request = urllib.request.Request(
            self.base + path, headers={"Authorization": "Bearer " + ADMIN_KEY}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def all_events(self):
        events, cursor = [], ""
        while True:
            page = self.admin_get(f"/api/events?limit=1000&cursor={cursor}")
            events.extend(page["events"])
            if page["next_cursor"] is None:
                return events
            cursor = page["next_cursor"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    binary = os.environ.get("UNAVOCE_BIN", "target/debug/unavoce")
    if not os.path.exists(binary):
        pytest.fail(f"the unavoce binary is not at {binary}: build it first (cargo build) or set UNAVOCE_BIN")
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        process = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data", data,
             "--write-key", WRITE_KEY, "--admin-key", ADMIN_KEY],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "UNAVOCE_LOG": "warn"},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 20
            while True:
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1)
                    break
                except OSError:
                    if time.time() > deadline or process.poll() is not None:
                        pytest.fail("unavoce serve did not start")
                    time.sleep(0.05)
            yield Server(base)
        finally:
            process.terminate()
            process.wait(timeout=10)
