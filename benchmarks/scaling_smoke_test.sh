#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Smoke test of //benchmarks:scaling: a --quick run with tiny runs must
# finish, pass every exactness check (the binary exits 1 on a mismatch),
# and write the CSV: the exact header, one row per impl x thread count
# (placement compact, plus spread where it differs), the latency rows, the
# object churn rows (--quick: K = 1 and 100) and the memory per object, the
# scrape rows and the publication rows (adds on a published and an
# unpublished counter; a read of a publishing child's counters from
# outside, --stat-counters of them).
# Negative controls then make the checks fail on purpose.  Output format
# and exactness only: no speed is asserted.
set -euo pipefail
bin=$1
out=${TEST_TMPDIR:-$(mktemp -d)}
csv=$out/scaling.csv
log=$out/scaling.log

fail() { echo "FAIL: $*"; echo "--- output ---"; cat "$log"; exit 1; }

"$bin" --quick --threads=1,2 --ms=1 --reps=2 --lat-samples=3 \
	--mem-counters=2000 --stat-counters=1234 --csv="$csv" --no-plot \
	>"$log" 2>&1 ||
	fail "scaling exited with status $?"

header=$(head -n 1 "$csv")
[[ "$header" == "primitive,impl,threads,placement,ns_per_op,mops_total" ]] ||
	fail "CSV header is '$header'"

# Every row: 6 fields, integer threads, positive numbers.
awk -F, 'NR > 1 && (NF != 6 || $3 !~ /^[0-9]+$/ || !($5 > 0) || !($6 > 0)) {
	print "bad row " NR ": " $0; bad = 1 } END { exit bad }' "$csv" ||
	fail "malformed CSV rows"

# Thread sweeps: each (primitive, impl) compact at both thread counts;
# spread only where it puts threads on other CPUs than compact (never on
# one node; at 2 threads only, on a multi-node machine), so at most as
# often.
awk -F, 'NR > 1 && $1 != "fence" && $1 != "latency" && $1 != "scrape" &&
	$1 != "add_scrape" && $1 != "add_publish" && $1 != "stat_read" &&
	$1 != "churn" && $1 != "kill_batch" {
	if ($4 != "compact" && $4 != "spread") { print "placement " $4; bad = 1 }
	n[$1 "," $2 "," $4]++; t[$3] = 1 }
	END { for (k in n) if (k ~ /,compact$/ ? n[k] != 2 : n[k] > 2) {
	          print k ": " n[k] " rows"; bad = 1 }
	      if (!(1 in t) || !(2 in t)) { print "thread counts missing"; bad = 1 }
	      exit bad }' "$csv" || fail "thread sweep rows incomplete"

for impl in "plain add floor" "percpu_add rseq" "per-thread atomic" \
	"shared atomic" "counter_u64_add" "mutex" "shared atomic inc+dec" \
	"localcount acquire+release" "percpu_ref get+put percpu" \
	"percpu_ref get+put atomic" "pserialize + localcount" \
	"rwlock + localcount" "global atomic refcount"; do
	n=$(awk -F, -v i="$impl" '$2 == i && $4 == "compact"' "$csv" | wc -l)
	[[ $n == 2 ]] || fail "impl '$impl': $n compact rows, want 2"
done

for op in counter_u64_fetch counter_u64_zero localcount_drain \
	"percpu_ref_kill -> confirm" percpu_ref_switch_to_atomic_sync \
	percpu_ref_switch_to_percpu pserialize_perform \
	"localcount_trydrain -> true" "localcount_trydrain -> false"; do
	grep -q "^latency,$op,1,idle," "$csv" || fail "no idle latency row for $op"
done
# With another usable CPU, the busy rows too (threads = busy CPUs + 1).
if awk -F, '$1 == "latency" && $4 == "busy" { found = 1 } END { exit !found }' "$csv"; then
	for op in pserialize_perform "localcount_trydrain -> true" \
		"localcount_trydrain -> false"; do
		grep -q "^latency,$op,[0-9]*,busy," "$csv" ||
			fail "no busy latency row for $op"
	done
fi

# Object churn: each variant at K = 1 and 100 (--quick), at T = 1,
# min(2, nproc) and nproc (not --threads), compact, once each; nothing
# else; the table, its crossover lines and those of the summary.
ncpu=$(nproc)
churn_threads=$(printf '%s\n' 1 $((ncpu < 2 ? ncpu : 2)) "$ncpu" | sort -un)
for t in $churn_threads; do
	for k in 1 100; do
		for v in "atomic refcount" percpu_ref localcount; do
			n=$(grep -c "^churn,$v churn K=$k,$t,compact," "$csv" || true)
			[[ $n == 1 ]] || fail "churn '$v churn K=$k' at $t threads: $n rows, want 1"
		done
	done
	for v in percpu_ref localcount; do
		grep -q "churn: $v beats atomic refcount from K, $t thr " "$log" ||
			fail "no churn crossover line for $v at $t threads"
	done
done
n=$(grep -c "^churn," "$csv" || true)
want=$((6 * $(wc -w <<<"$churn_threads")))
[[ $n == "$want" ]] || fail "$n churn rows, want $want"
grep -q "^object churn: per object" "$log" || fail "no object churn table"

# Killing many refs (--quick: n = 1, 10, 1000): batch, loop, threads.
for n in 1 10 1000; do
	for way in "percpu_ref_kill_batch" "percpu_ref_kill loop" \
		"percpu_ref_kill threads"; do
		c=$(grep -c "^kill_batch,$way N=$n,[0-9]*,idle," "$csv" || true)
		[[ $c == 1 ]] || fail "kill_batch '$way N=$n': $c rows, want 1"
	done
done
grep -q "^killing many refs:" "$log" || fail "no killing many refs table"
grep -q "kill: batch of 1000, fences per kill" "$log" ||
	fail "no kill batch summary line"
for v in "atomic refcount" percpu_ref localcount; do
	grep -q "^    $v .* bytes in the object .*total .* bytes" "$log" ||
		fail "no memory per object line for $v"
done

# Scrape: one row for the dump of 10,000 counters; counter_u64_add with and
# without a scraper at every thread count up to nproc (here 1, and 2 where
# there are 2 CPUs).
grep -q "^scrape,prometheus_string 10000 counters,1,idle," "$csv" ||
	fail "no scrape row"
for n in 1 2; do
	((n <= ncpu)) || continue
	for impl in "counter_u64_add alone" "counter_u64_add + scraper"; do
		grep -q "^add_scrape,$impl,$n,compact," "$csv" ||
			fail "no add_scrape row '$impl' at $n threads"
	done
	grep -q "add + scraper: slowdown, adder CPU per add, $n thr .*target <= 5.0%" \
		"$log" || fail "no scraper slowdown target line at $n threads"
done
grep -q "scrape of 10000 counters, median .* ms (p99 .* bytes)" "$log" ||
	fail "no scrape cost in the summary"

# Publication: counter_u64_add on an unpublished and a published counter
# at 1 and 2 threads (the --threads values up to max(2, nproc)), with the
# target line; the read of 1234 published counters from outside, alone and
# rendered, and the child's own dump of them.  Under TSan the binary
# measures none of it (its children start threads after a fork, which
# TSan forbids) and says so: then only that is checked, and the two
# negative controls below are left out.
publish_skipped=false
if grep -q "^publication: not measured under TSan" "$log"; then
	publish_skipped=true
	echo "SKIP: publication rows (TSan build: the binary says why)"
fi
for n in 1 2; do
	$publish_skipped && break
	for impl in "counter_u64_add unpublished" "counter_u64_add published"; do
		grep -q "^add_publish,$impl,$n,compact," "$csv" ||
			fail "no add_publish row '$impl' at $n threads"
	done
	grep -q "add: published / unpublished, ns per add, $n thr .*target <= 1.05x" \
		"$log" || fail "no published / unpublished target line at $n threads"
done
$publish_skipped ||
for row in "percpu_stat_snapshot 1234 counters,1,outside" \
	"snapshot + prometheus 1234 counters,1,outside" \
	"prometheus_string 1234 counters,1,in-process"; do
	grep -q "^stat_read,$row," "$csv" || fail "no stat_read row '$row'"
done
$publish_skipped || grep -q "read of 1234 published counters, + render .* ms (p90 .* ms)" "$log" ||
	fail "no stat read figure in the summary"

grep -q "^summary (ratios" "$log" || fail "no summary"
grep -q "lookup: pserialize / rwlock, total Mops/s, 2 threads" "$log" ||
	fail "no pserialize / rwlock lookup ratio"
grep -q "localcount_trydrain -> false / -> true, idle" "$log" ||
	fail "no localcount_trydrain latency ratio"
grep -q "bytes per counter per CPU" "$log" || fail "no memory figure"
grep -q "^CSV written to $csv" "$log" || fail "CSV path not reported"
echo "PASS: $(($(wc -l <"$csv") - 1)) CSV rows"

# Negative control: one op more than counted must fail the run (exit 1).
for impl in "percpu_add rseq" "counter_u64_add" "mutex"; do
	rc=0
	"$bin" --threads=1 --ms=1 --reps=1 --no-csv --inject-mismatch="$impl" \
		>"$log" 2>&1 || rc=$?
	[[ $rc == 1 ]] || fail "--inject-mismatch='$impl' exited $rc, want 1"
	grep -q "COUNT MISMATCH: $impl" "$log" ||
		fail "--inject-mismatch='$impl' did not report the mismatch"
done
# The same for the publication rows: an uncounted add on the published
# counter; and the publishing child changing one counter after setting it,
# which the read from outside must see.  With either injection only the
# publication rows run (tiny sizes too).
$publish_skipped ||
for impl in "counter_u64_add published" "percpu_stat_snapshot"; do
	rc=0
	"$bin" --quick --threads=1 --ms=1 --reps=1 --lat-samples=3 \
		--mem-counters=2000 --stat-counters=200 --no-csv \
		--inject-mismatch="$impl" >"$log" 2>&1 || rc=$?
	[[ $rc == 1 ]] || fail "--inject-mismatch='$impl' exited $rc, want 1"
	grep -q "COUNT MISMATCH: $impl" "$log" ||
		fail "--inject-mismatch='$impl' did not report the mismatch"
done
# The churn rows: one object more than the run created (churned after it,
# alone), so release() ran once too often.  Only the churn rows run.
for impl in "percpu_ref churn K=1" "localcount churn K=1"; do
	rc=0
	"$bin" --quick --threads=1 --ms=1 --reps=1 --no-csv \
		--inject-mismatch="$impl" >"$log" 2>&1 || rc=$?
	[[ $rc == 1 ]] || fail "--inject-mismatch='$impl' exited $rc, want 1"
	grep -q "COUNT MISMATCH: $impl" "$log" ||
		fail "--inject-mismatch='$impl' did not report the mismatch"
done
# The kill batches: one ref more killed (and released) after each batch
# run than the run counted.  Only the kill rows run.
rc=0
"$bin" --quick --threads=1 --ms=1 --reps=1 --no-csv \
	--inject-mismatch=percpu_ref_kill_batch >"$log" 2>&1 || rc=$?
[[ $rc == 1 ]] || fail "--inject-mismatch=percpu_ref_kill_batch exited $rc, want 1"
grep -q "EXACTNESS CHECK FAILED during percpu_ref_kill_batch" "$log" ||
	fail "--inject-mismatch=percpu_ref_kill_batch did not report the mismatch"
echo "PASS: injected mismatches detected"
