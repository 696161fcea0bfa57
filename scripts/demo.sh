#!/usr/bin/env bash
# The README's main command: the dispatcher on its embedded default — the
# local executor and a local folder as the bucket — inspecting and
# profiling the sample image. No cluster, no MinIO.
#
#   scripts/demo.sh BIN_DIR IMAGES_DIR BUCKET_DIR
set -euo pipefail

bin=${1:?bin dir}
images=${2:?images dir}
bucket=${3:?bucket dir}

mkdir -p "$bucket/jobs" "$bucket/images"
cp -f "$images/debian.qcow2" "$bucket/images/sample-debian.qcow2"
# Specs name the image by its key in the bucket; the dispatcher's policy
# allows the bucket's images/ folder and nothing else by default.
# A rerun runs again: each spec has exactly one result, so drop the old ones.
rm -rf "$bucket/results"

cat >"$bucket/jobs/demo-inspect.json" <<JSON
{
  "version": "1.0",
  "job_id": "demo-inspect",
  "kind": "VMOperation",
  "operation": "guestkit.inspect",
  "execution": {"priority": 8, "timeout_seconds": 900},
  "payload": {
    "type": "guestkit.inspect.v1",
    "data": {"image": {"uri": "images/sample-debian.qcow2", "format": "qcow2"}}
  }
}
JSON

cat >"$bucket/jobs/demo-profile.json" <<JSON
{
  "version": "1.0",
  "job_id": "demo-profile",
  "kind": "VMOperation",
  "operation": "guestkit.profile",
  "execution": {"timeout_seconds": 900},
  "payload": {
    "type": "guestkit.profile.v1",
    "data": {
      "image": {"uri": "images/sample-debian.qcow2", "format": "qcow2"},
      "profiles": ["security", "compliance", "hardening"],
      "options": {"severity_threshold": "high"},
      "output": {"format": "sarif", "include_remediation": true}
    }
  }
}
JSON

"$bin/guestkit-dispatcher" --bucket "$bucket" once --executor local --runner "$bin/guestkit-runner"
echo
"$bin/guestkit-dispatcher" --bucket "$bucket" status
echo
echo "results: $bucket/results/"
