"""A local HTTP server standing in for the Hugging Face Hub's model endpoints, so that the hub client's own
snapshot_download (huggingface_hub, unmodified) runs against it: point HF_ENDPOINT at `url`.

`root/<org>/<name>/` is a repo; its one commit is the sha1 of its files, served as `main` and by that hash. It answers
what snapshot_download asks: the repo's info at a revision (`/api/models/<repo>[/revision/<rev>]`: sha and file list),
its tree (`/api/models/<repo>/tree/<rev>`) and each file (`/<repo>/resolve/<rev>/<path>`, with the commit and ETag
headers the client checks). Every request is logged in `requests`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class FakeHub:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                hub.requests.append(f"{self.command} {self.path}")
                code, body, headers = hub.answer(unquote(urlparse(self.path).path))
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def repo(self, repo_id: str) -> tuple[Path, list[str], str]:
        folder = self.root / repo_id
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        sha = hashlib.sha1(b"".join(f.encode() + (folder / f).read_bytes() for f in files)).hexdigest()
        return folder, files, sha

    def answer(self, path: str) -> tuple[int, bytes, dict]:
        not_found = (404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
        api = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+))?", path)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        match = api or resolve
        if not match or not (self.root / match[1]).is_dir():
            return not_found
        folder, files, sha = self.repo(match[1])
        revision = (api[3] if api else resolve[2]) or "main"
        if revision not in ("main", sha):
            return 404, b'{"error": "Revision not found"}', {"X-Error-Code": "RevisionNotFound"}
        if api and api[2] == "tree":
            body = [{"type": "file", "path": f, "size": (folder / f).stat().st_size,
                     "oid": hashlib.sha1((folder / f).read_bytes()).hexdigest()} for f in files]
            return 200, json.dumps(body).encode(), {"Content-Type": "application/json"}
        if api:
            body = {"id": match[1], "modelId": match[1], "sha": sha, "siblings": [{"rfilename": f} for f in files]}
            return 200, json.dumps(body).encode(), {"Content-Type": "application/json"}
        if resolve[3] not in files:
            return 404, b"", {"X-Error-Code": "EntryNotFound"}
        data = (folder / resolve[3]).read_bytes()
        return 200, data, {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
