#!/usr/bin/env bash
# Run the benchmarks and print their figures.
#   bench/run.sh                 every benchmark, each at its full default size
#   bench/run.sh NAME [ARGS...]  one benchmark (usage_scan, usage_cephfs, transfers, s3_stream,
#                                delta_view, delta_log, metadata_cache, small_files,
#                                batch_upload, large_transfers, many_files, parallel_chunks, snapshots, s3_snapshots, soak)
#                                with its own arguments, e.g. bench/run.sh transfers --quick
# PYTHON selects the interpreter (default: python on PATH, with storage-proxy installed).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python}"

if [ $# -gt 0 ]; then
  name="${1%.py}"
  shift
  exec "$py" "$here/$name.py" "$@"
fi
for name in usage_scan usage_cephfs transfers s3_stream delta_view delta_log metadata_cache \
  small_files batch_upload large_transfers many_files parallel_chunks snapshots s3_snapshots soak; do
  echo "=== $name"
  "$py" "$here/$name.py"
done
