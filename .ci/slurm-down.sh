#!/usr/bin/env bash
# Stop the test cluster .ci/slurm-up.sh started (its daemons, by their PID files) and its jobs.
scancel --user "$(id -un)" 2>/dev/null || true
stop=$(cd "$(dirname "$0")/../../shared/tools/slurm" 2>/dev/null && pwd)/stop_local_slurm.sh
[ -f "$stop" ] && bash "$stop"
exit 0
