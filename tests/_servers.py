"""HTTP servers on 127.0.0.1 for the download tests: no internet, nothing but this machine.

Each server runs in a daemon thread, answers each connection within ``TIMEOUT`` seconds and
is shut down by the ``with`` block that started it."""
import contextlib
import hashlib
import http.server
import threading
import urllib.parse

TIMEOUT = 10  # seconds a connection may stay silent


@contextlib.contextmanager
def serve(handler_class):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler_class)
    server.daemon_threads = True
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.05),
                              daemon=True)
    thread.start()
    try:
        yield server, f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


class Quiet(http.server.BaseHTTPRequestHandler):
    timeout = TIMEOUT
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass


def file_server(files):
    """Serves ``files``: path -> (body, how); how is 'whole', 'cut' (announces the whole
    length, sends half and closes) or 'corrupt' (the whole length of other bytes)."""

    class Handler(Quiet):
        def do_GET(self):
            self.server.requests.append(self.path)
            if self.path not in files:
                self.send_error(404)
                return
            body, how = files[self.path]
            self.send_response(200)
            self.send_header('Content-Type', 'application/octet-stream')
            self.send_header('Content-Length', str(len(body)))
            self.send_header('Connection', 'close')
            self.end_headers()
            if how == 'cut':
                self.wfile.write(body[:len(body) // 2])
            elif how == 'corrupt':
                self.wfile.write(bytes(len(body)))
            else:
                self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

    return serve(Handler)


def commit_of(repo, revision):
    return hashlib.sha1(f'{repo}@{revision}'.encode()).hexdigest()


def hub_server(repos):
    """A stand-in of the Hugging Face hub's file endpoint, ``/ORG/REPO/resolve/REV/FILE``
    (HEAD for the metadata, GET for the bytes), for ``HF_ENDPOINT``. ``repos``:
    ``{(repo, revision): {filename: bytes}}``. Answers as the hub does: ``X-Repo-Commit``,
    ``ETag`` (the SHA-256 of the file), ``Content-Length``; a missing file or revision is a
    404 with the hub's ``X-Error-Code``; an unknown repository a 401 ``RepoNotFound``."""

    class Handler(Quiet):
        def answer(self, with_body):
            self.server.requests.append(f'{self.command} {self.path}')
            path = urllib.parse.urlparse(self.path).path
            repo, _, rest = path.lstrip('/').partition('/resolve/')
            revision, _, filename = rest.partition('/')
            revision = urllib.parse.unquote(revision)
            if not any(r == repo for r, _ in repos):
                return self.fail(401, 'RepoNotFound')
            if (repo, revision) not in repos:
                return self.fail(404, 'RevisionNotFound')
            commit = commit_of(repo, revision)
            files = repos[repo, revision]
            if filename not in files:
                return self.fail(404, 'EntryNotFound', commit)
            body = files[filename]
            self.send_response(200)
            self.send_header('X-Repo-Commit', commit)
            self.send_header('ETag', f'"{hashlib.sha256(body).hexdigest()}"')
            self.send_header('Content-Length', str(len(body)))
            self.send_header('Content-Type', 'application/octet-stream')
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def fail(self, status, code, commit=None):
            self.send_response(status)
            self.send_header('X-Error-Code', code)
            if commit:
                self.send_header('X-Repo-Commit', commit)
            self.send_header('Content-Length', '0')
            self.end_headers()

        def do_HEAD(self):
            self.answer(False)

        def do_GET(self):
            self.answer(True)

    return serve(Handler)
