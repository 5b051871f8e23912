"""An SMS gateway for the bench scripts: takes every message (202) on
127.0.0.1:9001, keeps its connections alive as a real gateway does, and
forgets what it was sent. Offers a load decided wait in dfm's outbox until
`serve` sends them, and a gateway that is down would hold the dispatcher back."""
import http.server


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: no connection per SMS

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(202)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, address):
        pass  # dfm closing its connections at a stop


Server(("127.0.0.1", 9001), Sink).serve_forever()
