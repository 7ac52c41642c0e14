#!/usr/bin/env bash
# Runs a training command again while it exits with status 75 (preempted after writing a
# checkpoint) or 69 (the collective watchdog ended it: a rank, host or link was lost), so that
# it resumes until the run is done. Any other status ends the loop.
#
#   Launch/resume-until-done.sh Launch/mpirun-local.sh 2 lflow-dist train --config Configs/lorenz.yaml
set -u
max_attempts=${MAX_ATTEMPTS:-100}
for attempt in $(seq 1 "$max_attempts"); do
    "$@"
    status=$?
    [ "$status" -eq 75 ] || [ "$status" -eq 69 ] || exit "$status"
    echo "ended with $status (attempt $attempt of $max_attempts); resuming from the newest checkpoint"
done
echo "gave up after $max_attempts attempts" >&2
exit "$status"
