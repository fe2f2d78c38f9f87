#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# percpu-stat against synthetic writers (testing/synthetic_writer.c: a
# memfd "percpu-stat" laid out as <percpu/stat_format.h> says, published
# or broken on purpose): the exact output of -1, --json and --prometheus
# (testdata/), promtool on --prometheus and on serve's /metrics, --watch,
# --list, and each error case's message and exit status
# (docs/percpu-stat.md, docs/misuse.md).  Each writer prints "ready PID"
# once its segment exists: the test waits for that line, never a delay.
# usage: percpu_stat_test.sh PERCPU_STAT SYNTHETIC_WRITER TESTDATA/sample.once
set -uo pipefail
stat=$1 writer=$2 testdata=$(dirname "$3")
tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/percpu_stat_test.XXXXXX")
started=()
cleanup() {
	local p
	for p in "${started[@]}"; do
		kill "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
failures=0 checks=0

ok() {
	checks=$((checks + 1))
	echo "ok   $1"
}
fail() {
	checks=$((checks + 1))
	failures=$((failures + 1))
	echo "FAIL $1"
}

# start_writer [FAULT]: sets pid (the pid to read) and writer_pid.
start_writer() {
	local line
	exec {wfd}< <(exec "$writer" "$@")
	writer_pid=$!
	started+=("$writer_pid")
	if ! read -r -t 60 line <&"$wfd" || [[ $line != ready\ * ]]; then
		echo "FAIL: synthetic_writer $* did not start (read '$line')"
		exit 1
	fi
	pid=${line#ready }
}

stop_writer() {
	kill "$writer_pid" 2>/dev/null
	wait "$writer_pid" 2>/dev/null
}

promtool=${PERCPU_PROMTOOL:-$(command -v promtool || echo /usr/bin/promtool)}
[[ -x $promtool ]] || { echo "FAIL: promtool not found (Debian's prometheus package: tools/bootstrap.sh installs it)"; exit 1; }

# expect_error NAME STATUS MESSAGE-PART CMD...: CMD exits STATUS and says
# MESSAGE-PART on one stderr line, nothing on stdout.
expect_error() {
	local name=$1 want=$2 part=$3 rc
	shift 3
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if ((rc == want)) && grep -qF -- "$part" "$tmp/err" && [[ ! -s $tmp/out ]] &&
		(($(wc -l <"$tmp/err") == 1)); then
		ok "$name: exit $rc, $(cat "$tmp/err")"
	else
		fail "$name: exit $rc (want $want), stderr '$(cat "$tmp/err")' (want '$part'), stdout $(wc -c <"$tmp/out") bytes"
	fi
}

# Negative control: expect_error does fail on a wrong status or message.
(
	failures=0
	expect_error "control" 3 "no such process" true >/dev/null
	((failures == 1)) || exit 1
	failures=0
	expect_error "control" 1 "a message false never prints" false >/dev/null
	((failures == 1))
) && ok "negative control: expect_error fails a wrong status and a wrong message" ||
	fail "negative control: expect_error passed what it must fail"

# ---- the sample, published -------------------------------------------------
start_writer

"$stat" -1 "$pid" >"$tmp/once" 2>"$tmp/err"
if cmp -s "$tmp/once" "$testdata/sample.once"; then ok "-1 PID: exact"; else
	fail "-1 PID differs:"; diff "$testdata/sample.once" "$tmp/once"; fi

"$stat" -1 "$pid" http. >"$tmp/once-http"
if grep '^http\.' "$testdata/sample.once" | cmp -s - "$tmp/once-http" && [[ -s $tmp/once-http ]]; then
	ok "-1 PID PREFIX: only names starting with the prefix"
else
	fail "-1 PID http. differs:"; cat "$tmp/once-http"
fi

"$stat" --json "$pid" | sed "s/^{\"pid\": $pid,/{\"pid\": PID,/" >"$tmp/json"
if cmp -s "$tmp/json" "$testdata/sample.json"; then ok "--json: exact"; else
	fail "--json differs:"; diff "$testdata/sample.json" "$tmp/json"; fi
if "$stat" --json "$pid" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["pid"] == int(sys.argv[1]) and d["command"] == "synthetic", d
c = {(x["name"], x.get("index")): x for x in d["counters"]}
assert c[("vm.pages_wired", None)]["value"] == -3
assert c[("http.codes", 2)]["labels"] == {"service": "api", "code": "5xx"}
assert c[("http.codes", 2)]["length"] == 3
assert c[("x.quoted", None)]["labels"]["path"] == "/a\"b\\c\nd"
' "$pid"; then ok "--json: parses as JSON, values and labels as written"; else fail "--json does not parse as expected"; fi

"$stat" --prometheus "$pid" >"$tmp/prom"
if cmp -s "$tmp/prom" "$testdata/sample.prom"; then ok "--prometheus: exact (as counter_sysctl_prometheus prints it: :prometheus_parity_test)"; else
	fail "--prometheus differs:"; diff "$testdata/sample.prom" "$tmp/prom"; fi
if "$promtool" check metrics <"$tmp/prom" >"$tmp/promtool" 2>&1; then ok "--prometheus: promtool check metrics passes"; else
	fail "--prometheus: promtool says: $(cat "$tmp/promtool")"; fi
# Negative control: promtool does fail a broken exposition (a sample
# of a family before its TYPE, twice).
{ tail -n 1 "$tmp/prom"; cat "$tmp/prom"; } >"$tmp/prom-bad"
if ! "$promtool" check metrics <"$tmp/prom-bad" >/dev/null 2>&1; then ok "negative control: promtool rejects a broken exposition"; else
	fail "negative control: promtool passed a broken exposition"; fi

"$stat" --prometheus --prefix app_ "$pid" >"$tmp/prom-prefix"
if "$promtool" check metrics <"$tmp/prom-prefix" >/dev/null 2>&1 &&
	grep -qx 'app_9lives_n_total 7' "$tmp/prom-prefix" && grep -qx 'app_http_requests_total 43' "$tmp/prom-prefix"; then
	ok "--prometheus --prefix app_: prefixed names (metric_skip), promtool passes"
else
	fail "--prometheus --prefix app_:"; cat "$tmp/prom-prefix"
fi
expect_error "--prefix 9bad is refused" 2 "is not the start of a Prometheus metric name" "$stat" --prometheus --prefix 9bad "$pid"

"$stat" --watch 0.05 --count 2 "$pid" >"$tmp/watch" 2>"$tmp/err"
rc=$?
if ((rc == 0)) && (($(grep -c "^pid $pid (synthetic): 8 counters, refresh" "$tmp/watch") == 2)) &&
	grep -qE '^http\.codes\[2\] +5 +0\.00$' "$tmp/watch" && grep -qE '^vm\.pages_wired +-3 +0\.00$' "$tmp/watch"; then
	ok "--watch 0.05 --count 2: two refreshes with values and rates, then exit 0"
else
	fail "--watch (exit $rc):"; cat "$tmp/watch" "$tmp/err"
fi

"$stat" -l >"$tmp/list"
if grep -qE "^$pid +synthetic +8$" "$tmp/list" && head -1 "$tmp/list" | grep -q '^PID  *COMMAND  *COUNTERS$'; then
	ok "-l: lists the writer (pid, command, 8 counters)"
else
	fail "-l:"; cat "$tmp/list"
fi

# ---- serve -------------------------------------------------------------------
second_pid=$pid
start_writer
exec {sfd}< <(exec "$stat" serve --listen 127.0.0.1:0)
server=$!
started+=("$server")
if read -r -t 60 line <&"$sfd" && [[ $line =~ ^percpu-stat:\ serving\ (http://127\.0\.0\.1:[0-9]+/metrics)$ ]]; then
	url=${BASH_REMATCH[1]}
	ok "serve --listen 127.0.0.1:0: picked a port and printed it ($url)"
	/usr/bin/python3 - "$url" >"$tmp/metrics" 2>"$tmp/err" <<'PY'
import http.client, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
c.request("GET", "/metrics")
r = c.getresponse()
assert r.status == 200, r.status
assert r.getheader("Content-Type").startswith("text/plain; version=0.0.4"), r.getheader("Content-Type")
sys.stdout.write(r.read().decode())
c.request("GET", "/other")
r = c.getresponse()
r.read()
assert r.status == 404, r.status
PY
	if [[ $? == 0 ]] && "$promtool" check metrics <"$tmp/metrics" >"$tmp/promtool" 2>&1; then
		ok "serve: GET /metrics 200 passes promtool; /other 404"
	else
		fail "serve: $(cat "$tmp/err" "$tmp/promtool")"
	fi
	for p in "$second_pid" "$pid"; do
		if grep -qx "http_requests_total{pid=\"$p\",command=\"synthetic\"} 43" "$tmp/metrics" &&
			grep -qx "http_codes_total{service=\"api\",code=\"5xx\",pid=\"$p\",command=\"synthetic\"} 5" "$tmp/metrics"; then
			ok "serve: pid $p's samples carry pid and command labels"
		else
			fail "serve: pid $p's samples missing"
		fi
	done
	if (($(grep -c '^# TYPE http_requests_total counter$' "$tmp/metrics") == 1)); then
		ok "serve: one family per metric across processes (HELP/TYPE once)"
	else
		fail "serve: a family repeated"
	fi
else
	fail "serve did not print its address (read '$line')"
fi
kill "$server" 2>/dev/null
stop_writer

# ---- errors ------------------------------------------------------------------
expect_error "usage: no PID" 2 "no PID given" "$stat" -1
expect_error "usage: a PID that is not a number" 2 "'abc' is not a process id" "$stat" -1 abc
expect_error "usage: unknown option" 2 "unknown option '--frobnicate'" "$stat" --frobnicate 1
expect_error "usage: serve without --listen" 2 "serve needs --listen" "$stat" serve
expect_error "serve: a bad address" 2 "expected A.B.C.D:PORT" "$stat" serve --listen localhost
if "$stat" --help | grep -q '^usage: percpu-stat -l$'; then ok "--help prints the usage, exit 0"; else fail "--help"; fi

no_such_pid=$(($(cat /proc/sys/kernel/pid_max) + 1))
expect_error "a pid that does not exist" 3 "pid $no_such_pid: no such process" "$stat" -1 "$no_such_pid"

# A zombie (killed, not yet reaped: bash reaps its children at once, so a
# Python parent holds it): its descriptors are gone, which is neither
# "publishes nothing" nor "permission denied".
if /usr/bin/python3 - "$writer" "$stat" >"$tmp/zombie" 2>&1 <<'PY'; then
import os, signal, subprocess, sys, time
w = subprocess.Popen([sys.argv[1]], stdout=subprocess.PIPE, text=True)
pid = int(w.stdout.readline().split()[1])
os.kill(w.pid, signal.SIGKILL)
for _ in range(600):
    with open(f"/proc/{w.pid}/stat") as f:
        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
            break
    time.sleep(0.05)
r = subprocess.run([sys.argv[2], "-1", str(pid)], capture_output=True, text=True)
w.wait()
want = f"pid {pid}: has exited (not yet reaped by its parent)"
print(f"exit {r.returncode}, {r.stderr.strip()}")
sys.exit(0 if r.returncode == 3 and want in r.stderr and not r.stdout else 1)
PY
	ok "a writer that has exited, not reaped: $(cat "$tmp/zombie")"
else
	fail "a writer that has exited, not reaped: $(cat "$tmp/zombie")"
fi

start_writer
stop_writer
expect_error "a writer that has exited" 3 "pid $pid: no such process" "$stat" --json "$pid"

sleep 600 &
sleeper=$!
started+=("$sleeper")
expect_error "a process without a segment (sleep)" 5 "pid $sleeper: publishes no counters (no stats segment" "$stat" -1 "$sleeper"
kill "$sleeper"

start_writer no-segment
expect_error "-1: no segment" 5 "pid $pid: publishes no counters" "$stat" -1 "$pid"
stop_writer
start_writer unpublished
expect_error "--json: segment not published (header.published 0)" 5 "pid $pid: stats segment is not published" "$stat" --json "$pid"
stop_writer
start_writer bad-magic
expect_error "--prometheus: malformed segment" 6 "pid $pid: stats segment has a bad magic" "$stat" --prometheus "$pid"
stop_writer
start_writer unsealed
expect_error "-1: segment without F_SEAL_SHRINK" 6 "pid $pid: its stats segment is not sealed against shrinking" "$stat" -1 "$pid"
stop_writer
start_writer stale-start
expect_error "-1: header.start_time is not the process's (pid reused)" 6 "pid $pid: its stats segment was written by an earlier process" "$stat" -1 "$pid"
stop_writer
start_writer seq-stuck
expect_error "-1: a slot that never holds still" 6 "never held still in 1000 tries" "$stat" -1 "$pid"
stop_writer
start_writer fork
expect_error "-1: segment inherited across fork (header.pid is the parent's)" 6 "pid $pid: its stats segment belongs to pid $writer_pid (inherited across fork)" "$stat" -1 "$pid"
stop_writer

# Another user's process: opening its descriptors is refused by the
# kernel.  Run the reader as nobody (needs root to switch user).
start_writer
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
if ((EUID != 0)) || ! command -v setpriv >/dev/null; then
	echo "SKIP another user's process: needs root (to run the reader as nobody) and setpriv"
elif ! "${as_nobody[@]}" true 2>"$tmp/err"; then
	echo "SKIP another user's process: cannot switch to nobody here ($(cat "$tmp/err")): a user namespace without that uid?"
else
	# nobody must be able to run the binary: a copy outside the test tree.
	shared=$(mktemp -d /tmp/percpu_stat_nobody.XXXXXX)
	cp "$stat" "$shared/percpu-stat"
	chmod 755 "$shared" "$shared/percpu-stat"
	expect_error "another user's process" 4 "pid $pid: permission denied" \
		"${as_nobody[@]}" "$shared/percpu-stat" -1 "$pid"
	rm -rf "$shared"
fi
stop_writer

echo "$checks checks, $failures failed"
((failures == 0))
