#!/bin/sh
# Runs every test binary given, prints each one's cmocka output, and closes
# with one summary line "N passed, N failed, N skipped". Exit 1 if any failed.
passed=0; failed=0; skipped=0; broken=0
# Tests never read or write the user's calibration cache (each test that
# needs one names its own).
export PLEXUS_COST_CACHE=none
unset PLEXUS_CALIBRATE
# stdbuf preloads libstdbuf.so, which ASan would otherwise refuse to follow.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
# GCC 12's LeakSanitizer crashes at exit ("Tracer caught signal 11") reading
# the dynamic TLS of libgomp's worker threads, which oneDNN starts. Not
# scanning TLS for pointers avoids the crash; it can only add false leak
# reports (memory referenced from TLS alone), never hide one. libgomp's own
# per-thread blocks are such false reports: tests/lsan.supp names them.
here=$(cd "$(dirname "$0")" && pwd)
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}use_tls=0:suppressions=$here/lsan.supp:print_suppressions=0"
for t in "$@"; do
  # stdbuf keeps cmocka's stdout and stderr lines in order.
  out=$(stdbuf -oL -eL "$t" 2>&1); rc=$?
  printf '%s\n' "$out"
  p=$(printf '%s\n' "$out" | grep -o '\[  PASSED  \] [0-9]*' | grep -o '[0-9]*$' | awk '{s+=$1} END {print s+0}')
  f=$(printf '%s\n' "$out" | grep -o '\[  FAILED  \] [0-9]*' | grep -o '[0-9]*$' | awk '{s+=$1} END {print s+0}')
  s=$(printf '%s\n' "$out" | grep -o '\[  SKIPPED \] [0-9]*' | grep -o '[0-9]*$' | awk '{s+=$1} END {print s+0}')
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "*** $t exited with status $rc"; broken=$((broken + 1)); failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
