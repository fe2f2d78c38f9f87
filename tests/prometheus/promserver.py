# SPDX-License-Identifier: MIT
"""A real Prometheus server for the tests that check scrapes end to end
(//tests/prometheus:prometheus_server_test, //tests/stat:sidecar_test):
start one scraping given targets every second, query its HTTP API, and
compare the series it holds with the values expected."""

import json
import os
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request


def free_port():
    """A TCP port on 127.0.0.1 nothing listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prometheus_path():
    """Debian's prometheus on PATH, or None."""
    return shutil.which("prometheus")


def start(tmp, jobs, log):
    """A prometheus scraping each job's 127.0.0.1 port every second, its
    data and config under `tmp`, its output to `log`: (Popen, API URL)."""
    config = os.path.join(tmp, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n"
                "  scrape_interval: 1s\n"
                "  scrape_timeout: 1s\n"
                "scrape_configs:\n")
        for job, port in jobs.items():
            f.write(f"  - job_name: {job}\n"
                    f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
    web = free_port()
    server = subprocess.Popen(
        [prometheus_path(), f"--config.file={config}",
         f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    return server, f"http://127.0.0.1:{web}"


def query(api, promql):
    """The result of an instant query (a list of series)."""
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"query {promql!r}: {body}")
    return body["data"]["result"]


def mismatches(expected, got):
    """Each difference between the expected values {(name, frozenset of
    label pairs): number} and the series got (value strings from the API,
    several joined by '|'), as a sentence; [] when they agree."""
    out = []
    for key in sorted(set(expected) | set(got), key=repr):
        name, labels = key
        where = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels)) + "}"
        if key not in got:
            out.append(f"{where}: missing, expected {expected[key]}")
        elif key not in expected:
            out.append(f"{where}: unexpected series, value {got[key]}")
        elif ("|" in got[key] or float(got[key]) != expected[key]
              or abs(expected[key]) >= 2**53):
            out.append(f"{where}: got {got[key]}, expected {expected[key]}")
    return out
