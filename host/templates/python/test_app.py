"""The component on a real ``switchboard serve`` on loopback (port 0), driven by a real
WebSocket client. The host binary is $SWITCHBOARD, else ``switchboard`` on the PATH."""

import json
import os
import subprocess
import tempfile
import time
import unittest

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class ComponentTest(unittest.TestCase):
    def setUp(self):
        self.scratch = tempfile.TemporaryDirectory()
        ready = os.path.join(self.scratch.name, "ready.json")
        self.host = subprocess.Popen([
            os.environ.get("SWITCHBOARD", "switchboard"), "serve", "--config", "switchboard.toml",
            "--listen", "127.0.0.1:0", "--operator-listen", "127.0.0.1:0", "--ready-file", ready,
        ])
        # Cleanups run even when setUp fails, unlike tearDown.
        self.addCleanup(self.scratch.cleanup)
        self.addCleanup(self.stop_host)
        # The first start compiles the component (seconds); later ones load it from .switchboard.
        deadline = time.monotonic() + 180
        while not os.path.exists(ready):
            if self.host.poll() is not None:
                self.fail(f"switchboard serve exited with {self.host.returncode}")
            if time.monotonic() > deadline:
                self.fail("switchboard serve did not get ready")
            time.sleep(0.1)
        with open(ready) as file:
            self.address = json.load(file)["public"]

    def stop_host(self):
        self.host.terminate()
        self.host.wait(timeout=30)

    def test_echoes_and_ends_the_call_cleanly(self):
        with connect(f"ws://{self.address}/media", open_timeout=30) as socket:
            socket.send("hello")
            self.assertEqual(socket.recv(timeout=30), "hello")
            socket.send("bye")
            with self.assertRaises(ConnectionClosed) as closed:
                socket.recv(timeout=30)
            self.assertEqual(closed.exception.rcvd.code, 1000)


if __name__ == "__main__":
    unittest.main()
