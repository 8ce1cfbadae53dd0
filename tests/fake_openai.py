"""A local OpenAI-compatible chat endpoint for judge tests: real HTTP, scripted replies."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator


@contextlib.contextmanager
def openai_endpoint(choice: Callable[[dict], dict], secret: str | None = None) -> Iterator[str]:
    """Serve `/v1/chat/completions` on a free port, answering each request body with `{"choices": [choice(body)]}`
    (or with the bytes themselves when `choice` returns bytes: a broken endpoint); with `secret`, a request without
    `Authorization: Bearer <secret>` gets 401. Yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            if secret is not None and self.headers.get("Authorization") != f"Bearer {secret}":
                self.send_response(401)
                self.end_headers()
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply = choice(body)
            data = reply if isinstance(reply, bytes) else json.dumps({"choices": [reply]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # bound to port 0 and kept open: no race for a port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def joined_text(body: dict) -> str:
    """Every message's content, one per line (what the scripted judges match on)."""
    return "\n".join(m["content"] for m in body["messages"])
