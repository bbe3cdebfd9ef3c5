# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Local servers on 127.0.0.1 for download tests: one that serves files, one that stays silent."""
import collections
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict


class FileServer:
    """Serves ``files[path] = bytes`` over HTTP and counts the requests per path."""

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.requests = collections.Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):

            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests[self.path] += 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f'http://127.0.0.1:{self.httpd.server_port}{path}'

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SilentServer:
    """Accepts TCP connections and never sends a byte (a hung checkpoint server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen()
        self.connections = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.connections.append(connection)  # held open, never answered

    def url(self, path: str) -> str:
        return f'http://127.0.0.1:{self.sock.getsockname()[1]}{path}'

    def close(self) -> None:
        self.sock.close()
        for connection in self.connections:
            connection.close()
