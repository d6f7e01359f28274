#!/usr/bin/env bash
# Drives a running-from-config teletrace with loadgen and reports what the collector
# process spent: spans/s, CPU seconds per million spans, spans per CPU-second, peak RSS.
#
#   scripts/bench-pipeline.sh CONFIG [loadgen args...]
#   scripts/bench-pipeline.sh configs/forward-debug.yaml --duration 20s
#   scripts/bench-pipeline.sh configs/forward-debug.yaml --rate 10000 --duration 30s
#
# With SINK_CONFIG set, a second teletrace is started from it first (the downstream of a
# forwarding config, e.g. configs/otlp-sink.yaml on 14317); only the first one is measured:
#   SINK_CONFIG=configs/otlp-sink.yaml scripts/bench-pipeline.sh configs/forward-otlp.yaml
#
# COLLECTOR_SET adds one --set to the measured collector only, e.g. the forwarding
# benchmark without compression:
#   COLLECTOR_SET=exporters::otlp::compression=none SINK_CONFIG=configs/otlp-sink.yaml \
#     scripts/bench-pipeline.sh configs/forward-otlp.yaml --rate 300000 --duration 15s
#
# Needs release builds: cargo build --release -p teletrace -p loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1; shift
bin=target/release/teletrace
loadgen=target/release/loadgen
[ -x "$bin" ] && [ -x "$loadgen" ] || { echo "build first: cargo build --release -p teletrace -p loadgen" >&2; exit 2; }

# PIN=1 runs the measured collector on CPU 0 and the sink and loadgen on CPU 1, so that
# they do not share a core with it (its CPU seconds then vary less from run to run).
measured= others=
if [ -n "${PIN:-}" ]; then
  measured="taskset -c 0" others="taskset -c 1"
fi

sink_pid=
if [ -n "${SINK_CONFIG:-}" ]; then
  RUST_LOG=warn $others "$bin" --config "$SINK_CONFIG" --set service::telemetry::metrics::level=none 2>/dev/null &
  sink_pid=$!
  sleep 0.5
fi

log=$(mktemp)
RUST_LOG=warn $measured "$bin" --config "$config" --set service::telemetry::metrics::level=none \
  ${COLLECTOR_SET:+--set "$COLLECTOR_SET"} 2>"$log" &
pid=$!
trap 'kill $pid ${sink_pid} 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/4317) 2>/dev/null && break
  sleep 0.1
done

ticks=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
before=$(cpu)
start=$(date +%s.%N)
summary=$($others "$loadgen" --endpoint http://127.0.0.1:4317 --json --quiet "$@")
end=$(date +%s.%N)
after=$(cpu)
hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
kill -TERM $pid; wait $pid || true

python3 - "$summary" "$before" "$after" "$ticks" "$start" "$end" "$hwm" "$rss" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
before, after, ticks = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
wall = float(sys.argv[6]) - float(sys.argv[5])
cpu = (after - before) / ticks
accepted = s.get("spans_accepted", s.get("accepted_spans", 0))
print(f"loadgen: {json.dumps({k: s[k] for k in s if not isinstance(s[k], (dict, list))})}")
print(f"spans accepted: {accepted}  wall: {wall:.1f}s  achieved: {accepted / wall:,.0f} spans/s")
print(f"collector CPU: {cpu:.2f}s  ->  {cpu / max(accepted, 1) * 1e6:.3f} CPU-s per million spans, {accepted / max(cpu, 1e-9):,.0f} spans per CPU-second")
print(f"collector RSS: peak {int(sys.argv[7]) / 1024:.1f} MiB, at end {int(sys.argv[8]) / 1024:.1f} MiB")
PY
