#!/usr/bin/env bash
# Runs the whole test suite (what `pnpm test` runs: format check, typecheck, the API reference, every vitest project) several times in a
# row while busy processes load the CPU, and reports every failure: which run, which test. Shows whether a change makes
# the suite flaky on a loaded machine.
#
#   pnpm test:stress                      # 5 runs, 2 busy processes
#   pnpm test:stress --runs 10 --busy 3   # or STRESS_RUNS=10 STRESS_BUSY=3 pnpm test:stress
#
# Each busy process is `node -e 'for(;;){}'` (one core each); they are killed when the script ends, also on Ctrl-C.
# Logs and vitest's JSON reports stay in a temporary directory, printed at the end. Exits 1 when any run failed.
set -u

runs="${STRESS_RUNS:-5}"
busy="${STRESS_BUSY:-2}"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --busy) busy="$2"; shift 2 ;;
    --) shift ;;
    *) echo "usage: pnpm test:stress [--runs N] [--busy M]" >&2; exit 2 ;;
  esac
done
case "$runs$busy" in *[!0-9]*) echo "--runs and --busy take whole numbers" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.."
out="$(mktemp -d "${TMPDIR:-/tmp}/errand-stress-XXXXXX")"
# Job control: each background job (a busy process, a test run) gets a process group of its own, so that a test run is
# stopped as a whole (pnpm, vitest, its workers and the redis-servers they started) on Ctrl-C or SIGTERM.
set -m
busy_pids=()
run_pid=""

stop_busy() {
  for pid in "${busy_pids[@]+"${busy_pids[@]}"}"; do kill "$pid" 2>/dev/null; done
  for pid in "${busy_pids[@]+"${busy_pids[@]}"}"; do wait "$pid" 2>/dev/null; done
  busy_pids=()
}
interrupted() {
  if [ -n "$run_pid" ]; then
    kill -TERM -- "-$run_pid" 2>/dev/null
    wait "$run_pid" 2>/dev/null
  fi
  echo
  echo "stress: interrupted; logs in $out"
  exit 130
}
trap stop_busy EXIT
trap interrupted INT TERM

for _ in $(seq 1 "$busy"); do
  node -e 'for (;;) {}' &
  busy_pids+=("$!")
done

echo "stress: $runs run(s) of pnpm test beside $busy busy process(es) on $(nproc) core(s); logs in $out"
failed_runs=0
failed_tests=0
suite_start=$SECONDS
for run in $(seq 1 "$runs"); do
  log="$out/run-$run.log"
  report="$out/run-$run.json"
  start=$SECONDS
  # What `pnpm test` runs, with vitest's JSON report added (pnpm would take a --reporter flag for itself)
  { pnpm format:check && pnpm typecheck && pnpm run docs && pnpm exec vitest run --reporter=default --reporter=json \
    --outputFile.json="$report"; } >"$log" 2>&1 &
  run_pid=$!
  wait "$run_pid"
  code=$?
  run_pid=""
  took=$((SECONDS - start))
  if [ "$code" -eq 0 ]; then
    echo "run $run/$runs: passed in ${took} s"
    continue
  fi
  failed_runs=$((failed_runs + 1))
  echo "run $run/$runs: FAILED in ${took} s (exit $code, log: $log)"
  # Every failed test by file and full name; a run that failed before vitest reported (format, types, a crash) shows
  # the end of its log instead.
  names="$(node -e '
    const fs = require("node:fs")
    const report = JSON.parse(fs.readFileSync(process.argv[1], "utf8"))
    for (const file of report.testResults ?? []) {
      const path = file.name.replace(process.cwd() + "/", "")
      const failed = (file.assertionResults ?? []).filter((a) => a.status === "failed")
      for (const a of failed) console.log(`  ✗ ${path} > ${a.fullName}`)
      if (failed.length === 0 && file.status === "failed") console.log(`  ✗ ${path}: ${(file.message ?? "").split("\n")[0]}`)
    }
  ' "$report" 2>/dev/null)"
  if [ -n "$names" ]; then
    echo "$names"
    failed_tests=$((failed_tests + $(printf '%s\n' "$names" | wc -l)))
  else
    failed_tests=$((failed_tests + 1))
    tail -n 15 "$log" | sed 's/^/  | /'
  fi
done

stop_busy
total=$((SECONDS - suite_start))
echo "stress: $runs run(s), $busy busy process(es): $((runs - failed_runs)) passed, $failed_runs failed" \
  "($failed_tests failure(s)) in ${total} s; logs in $out"
[ "$failed_runs" -eq 0 ]
