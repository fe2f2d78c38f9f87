# SPDX-License-Identifier: MIT
"""The Python scrape target of prometheus_server_test.py: registers
leaves with exact values, serves them with prometheus_client's
start_http_server and percpu.prometheus.Collector on 127.0.0.1, prints
"port N" and serves until stdin closes.  The values are the test's
PY_EXPECTED (all below 2**53)."""

import errno
import socket
import sys

import prometheus_client

import percpu
import percpu.prometheus


def serve(registry, tries=20):
    # prometheus_client 0.16's start_http_server does not say which port
    # 0 got: take one the kernel picks, again if another process took it.
    for _ in range(tries):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            prometheus_client.start_http_server(port, "127.0.0.1", registry)
            return port
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise RuntimeError(f"py_target: start_http_server: no free port in {tries} tries")


def main():
    requests = percpu.Counter()
    requests.add(2**50 + 3)
    requests.register("promsrv.py.requests", descr="requests served")
    shards = percpu.CounterArray(2)
    shards.add(0, 11)
    shards.add(1, 2**40)
    shards.register("promsrv.py.shards", descr="work by shard")
    registry = prometheus_client.CollectorRegistry()
    registry.register(percpu.prometheus.Collector())
    port = serve(registry)
    print(f"port {port}", flush=True)
    sys.stdin.read()  # until stdin closes
    requests.close()
    shards.close()


if __name__ == "__main__":
    main()
