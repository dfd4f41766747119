"""W&B-compatible endpoints on loopback, for tests of what a run does when W&B misbehaves.

`LoopbackWandb` answers the few requests wandb's service (wandb-core) makes to start a run, stream its
history and upload its files: the GraphQL mutations `UpsertBucket` and `CreateRunFiles`, the server
feature and viewer queries, `file_stream` and the file uploads. `stop()` shuts it down mid-run, so later
requests are refused, as when a real server goes away. `SilentServer` accepts TCP connections and never
answers (a hung proxy or server). `refused_port()` is a loopback port nothing listens on.
"""
from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENTITY = "gpt-exp-tests"
API_KEY = "local-" + "0" * 40  # the form of a local server's key; any key is accepted


class LoopbackWandb:
    def __init__(self):
        self.requests: list[str] = []
        self.file_stream_posts = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "LoopbackWandb":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """From now on every connection is refused."""
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, body: dict) -> dict:
        if path.startswith("/files/") and path.endswith("/file_stream"):
            self.file_stream_posts += 1
            return {"exitcode": None, "limits": {}}
        query = body.get("query", "")
        variables = body.get("variables") or {}
        operation = re.search(r"(?:query|mutation)\s+(\w+)", query)
        name = operation.group(1) if operation else ""
        self.requests.append(name or path)
        if name == "UpsertBucket":
            run = variables.get("name") or "run"
            project = {"id": "p", "name": variables.get("project") or "gpt_exp", "entity": {"id": "e", "name": ENTITY}}
            return {"data": {"upsertBucket": {"inserted": True, "bucket": {
                "id": f"b-{run}", "name": run, "displayName": variables.get("displayName") or run,
                "description": None, "config": "{}", "sweepName": None, "historyLineCount": 0, "project": project}}}}
        if name == "CreateRunFiles":
            files = [{"name": f, "uploadUrl": f"{self.url}/upload/{f}"} for f in variables.get("files") or []]
            return {"data": {"createRunFiles": {"runID": variables.get("run"), "uploadHeaders": [], "files": files}}}
        if name == "ServerFeaturesQuery":
            return {"data": {"serverInfo": {"features": []}}}
        if "viewer" in query:
            return {"data": {"viewer": {"id": "v", "entity": ENTITY, "username": ENTITY, "flags": "{}",
                                        "teams": {"edges": []}}}}
        if "organization" in query:
            return {"data": {"entity": {"organization": None}}}
        return {"data": {}}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                raw = self._body()
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                self._reply(server.answer(self.path, body if isinstance(body, dict) else {}))

            def do_PUT(self):
                self._body()
                self._reply({})

            def do_GET(self):
                self._reply({})

        return Handler


class SilentServer:
    """Accepts TCP connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "SilentServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)


def refused_port() -> str:
    """The URL of a loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
