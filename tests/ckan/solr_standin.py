"""A stand-in for Solr that answers the few calls CKAN makes, so the CKAN tests need no Solr.

Run as ``python solr_standin.py PORT``; it accepts index updates (and forgets them) and answers every
search with no results. CKAN checks the schema version at start-up, so ``/schema`` returns a schema
named ``ckan-2.11``.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCHEMA = b'<?xml version="1.0" encoding="UTF-8"?><schema name="ckan-2.11" version="1.6"></schema>'


class Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if "/schema" in self.path or "file=schema.xml" in self.path:
            body, kind = SCHEMA, "application/xml"
        else:
            answer = {"responseHeader": {"status": 0, "QTime": 0, "params": {}},
                      "response": {"numFound": 0, "start": 0, "docs": []}}
            if "/select" in self.path:
                answer["facet_counts"] = {"facet_fields": {}, "facet_queries": {}, "facet_ranges": {}}
            body, kind = json.dumps(answer).encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
