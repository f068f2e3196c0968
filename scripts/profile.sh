#!/usr/bin/env bash
# Profiles one system under the benchmark's load: runs a single trial of CALLS calls
# (default 300) through SYSTEM (switchboard, native or node; default switchboard), samples
# the system's process with `perf record -e cpu-clock` for 10 s mid-trial, and prints where
# its CPU time went: by binary (kernel, the system's own code, wasm JIT code, libc), the
# top symbols and, for Switchboard, the guest's functions; then counts its CPU per relayed
# frame for 5 s (perf stat) and splits its resident memory by kind. Needs `perf` (Debian's
# linux-perf; installed when missing and possible).
#
#   scripts/profile.sh [SYSTEM] [CALLS]
set -euo pipefail
cd "$(dirname "$0")/.."
system=${1:-switchboard}
calls=${2:-300}
if ! command -v perf >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
  else
    echo "profile: perf is not installed" >&2
    exit 1
  fi
fi
scripts/bench.sh --help >/dev/null # installs and builds
# Switchboard writes /tmp/perf-<pid>.map, so the guest's compiled functions have names.
export SWITCHBOARD_PERF_MAP=1
out=$(mktemp -d)
target/release/switchboard-bench compare --systems "$system" --start-calls "$calls" --max-calls "$calls" \
  --reference-calls "$calls" --rounds 0 --iterations 0 --measure-secs 20 --out "$out" >"$out/log.txt" 2>&1 &
bench=$!
case "$system" in
  switchboard) pattern="switchboard serve" ;;
  native) pattern="native-relay --listen" ;;
  node) pattern="node relay.js" ;;
  *) echo "profile: unknown system $system" >&2; exit 2 ;;
esac
sleep 8
pid=$(pgrep -f "$pattern" | head -1)
perf record -q -e cpu-clock -F 2000 -g -p "$pid" -o "$out/perf.data" -- sleep 10 2>/dev/null
cat "/proc/$pid/smaps" >"$out/smaps" 2>/dev/null || echo "profile: the process ended before its memory was read" >&2
# CPU per relayed frame: the process's CPU time over its writev calls (one per frame to
# Deepgram for Switchboard and the native relay; Node may write otherwise), unsampled, 5 s.
perf stat -x, -e task-clock,syscalls:sys_enter_writev -p "$pid" -o "$out/stat.csv" -- sleep 5 2>/dev/null || true
wait "$bench" || true
grep "calls:" "$out/log.txt"
echo "-- CPU by binary"
perf report -i "$out/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -E "^ +[0-9]" | head -8 || true
echo "-- top symbols (self)"
perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep -E "^ +[0-9]" | head -15 | cut -c1-120 || true
if [ "$system" = switchboard ]; then
  echo "-- the guest's compiled code by function (self; names from wasmtime's perf map)"
  perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep -E "^ +[0-9]" | grep "\[JIT\]" | head -12 | cut -c1-120 || true
  rm -f "/tmp/perf-$pid.map"
fi
if [ -s "$out/stat.csv" ]; then
  awk -F, '/task-clock/ { ms = $1 } /writev/ { frames = $1 }
    END { if (frames > 0) printf "-- CPU per relayed frame: %.1f us (%d frames in 5 s)\n", ms * 1000 / frames, frames }' "$out/stat.csv"
fi
# Resident memory mid-trial by kind: wasmtime reserves its instance pool (linear memories,
# tables) as one span of guard-paged mappings of a GiB or more, so what is resident inside
# that span is the guests'; anonymous memory outside it is the host's heap and stacks.
if [ -s "$out/smaps" ]; then
  echo "-- resident memory by kind ($calls calls, mid-trial)"
  perl -e '
    my $calls = pop @ARGV;
    my (@maps, $cur);
    while (<>) {
      if (/^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/) { $cur = { a => hex $1, b => hex $2, name => $3, rss => 0 }; push @maps, $cur }
      elsif (/^Rss:\s+(\d+)/) { $cur->{rss} = $1 }
    }
    my @big = grep { $_->{b} - $_->{a} >= 1 << 30 } @maps;
    my ($lo, $hi) = (0, 0);
    if (@big) { ($lo) = sort { $a <=> $b } map { $_->{a} } @big; ($hi) = sort { $b <=> $a } map { $_->{b} } @big }
    my ($pool, $anon, $file) = (0, 0, 0);
    for (@maps) {
      if ($_->{a} >= $lo && $_->{b} <= $hi && @big) { $pool += $_->{rss} } elsif ($_->{name} eq "" || $_->{name} =~ /^\[(heap|stack)/) { $anon += $_->{rss} } else { $file += $_->{rss} }
    }
    printf "  instance pool (guest linear memories): %6d KiB, %5.1f KiB a call\n", $pool, $pool / $calls;
    printf "  host heap and stacks (anonymous):      %6d KiB, %5.1f KiB a call (includes the idle process)\n", $anon, $anon / $calls;
    printf "  files (binary, libraries):             %6d KiB\n", $file;
  ' "$out/smaps" "$calls" 2>/dev/null || true
fi
