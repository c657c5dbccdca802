#!/usr/bin/env bash
# A single-node SLURM cluster for the tests (tests/test_slurm.py): ../shared/tools/slurm's script
# (slurmctld, slurmd, munge, slurmdbd + MariaDB for sacct), then a shorter wait before a requeued job
# may start again: SLURM holds it for the credential lifetime (AuthInfo cred_expire, 120 s by default)
# and starts it at its next scheduling pass (sched_interval, 60 s); 10 s each keeps the tests' requeues
# quick. .ci/slurm-down.sh stops it.
set -euo pipefail
start=$(cd "$(dirname "$0")/../../shared/tools/slurm" 2>/dev/null && pwd)/start_local_slurm.sh
if [ ! -x "$start" ] && [ ! -f "$start" ]; then echo "no $start: SLURM tests will skip" >&2; exit 1; fi
bash "$start"
conf=/etc/slurm/slurm.conf
if ! grep -q '^AuthInfo=cred_expire=10$' "$conf"; then
  printf 'AuthInfo=cred_expire=10\nSchedulerParameters=sched_interval=10,bf_interval=10\n' >> "$conf"
  for daemon in slurmd slurmctld; do   # restart (reconfigure does not change the credential lifetime)
    pid=$(cat "/var/run/local-slurm/$daemon.pid"); kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.3; done
  done
  /usr/sbin/slurmctld && /usr/sbin/slurmd
  for _ in $(seq 60); do sinfo -h -o %t | grep -q -E 'idle|mix|alloc' && break; sleep 1; done
fi
sinfo
