"""A small HTTP server on 127.0.0.1 for download tests: nothing in the tests reaches the internet."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves {path: bytes} on 127.0.0.1 with HTTP Range support, recording every request.

    ignore_range: answer 200 with the whole file even when a Range is asked for.
    cut_after: send only this many body bytes of a full response, then close the connection.
    """

    def __init__(self, files, ignore_range=False, cut_after=None):
        self.files, self.ignore_range, self.cut_after, self.requests = files, ignore_range, cut_after, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = server.files.get(self.path)
                record = {"path": self.path, "range": self.headers.get("Range"), "sent": 0}
                server.requests.append(record)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range") and not server.ignore_range:
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if server.cut_after is not None:
                    payload = payload[:server.cut_after]
                self.wfile.write(payload)
                record["sent"] = len(payload)
                if server.cut_after is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
