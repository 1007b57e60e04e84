"""`make run`: deploy the Serve app on the local Ray cluster (RAY_ADDRESS) and keep serving.

HTTP binds to 127.0.0.1:8000 unless ECHO_RAY_HTTP_HOST / ECHO_RAY_HTTP_PORT say otherwise.
"""

from __future__ import annotations

import os
import time
import urllib.request

import ray
from ray import serve

from echo_ray.app import build_app
from echo_ray.service.auth import client_headers

CURL = """
echo-ray is serving on {url}  (OpenAPI: {url}/docs)

  curl -s{auth} -X POST {url}/v1/sessions
  curl -s{auth} -X POST {url}/v1/reasoning -H 'content-type: application/json' \\
       -d '{{"input": {{"series": [0.1, 0.4, 0.9, 0.4, 0.1, 0.4, 0.9, 0.4, 0.1, 0.4, 0.9, 0.4, 0.1, 0.4, 0.9, 0.4, 0.1, 0.4, 0.9, 0.4, 0.1, 0.4, 0.9, 0.4, 0.1, 0.4, 0.9, 0.4, 0.1, 0.4], "horizon": 4}}}}'
  curl -s{auth} {url}/v1/stats

Ctrl-C stops serving (the Ray cluster keeps running; `make stop` stops it).
"""


def wait_ready(url: str, timeout_s: float = 120.0) -> None:
    """Poll /readyz until it answers 200. It needs the API token when one is set, so the
    poll sends `Authorization: Bearer $ECHO_RAY_API_TOKEN` then."""
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(f"{url}/readyz", headers=client_headers())
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"echo-ray did not become ready at {url}/readyz in {timeout_s:.0f}s")
        time.sleep(0.5)


def main() -> None:
    host = os.environ.get("ECHO_RAY_HTTP_HOST", "127.0.0.1")
    port = int(os.environ.get("ECHO_RAY_HTTP_PORT", "8000"))
    ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=False)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(), name="echo-ray", route_prefix="/")
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    wait_ready(url)
    # the variable's name, never its value: the token stays out of the terminal and logs
    auth = ' -H "Authorization: Bearer $ECHO_RAY_API_TOKEN"' if client_headers() else ""
    print(CURL.format(url=url, auth=auth), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.delete("echo-ray")


if __name__ == "__main__":
    main()
