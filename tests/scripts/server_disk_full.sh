#!/usr/bin/env bash
# Run inside `unshare -rm`: the demo server's data dir on a tiny tmpfs; an engineer pushes
# while the server's disk is full, then again once space is freed.
# Args: SERVER_BIN AGENT_BIN MOUNT_POINT AGENT_DIR PORT
set -u
SRV=$1; BIN=$2; MNT=$3; AGENT=$4; PORT=$5
mount -t tmpfs -o size=4m tmpfs "$MNT" || { echo "MOUNT_FAILED"; exit 3; }
export FIELDSYNC_LOG=warn
"$SRV" demo --data-dir "$MNT/demo" --listen "127.0.0.1:$PORT" >/dev/null 2>"$AGENT.server.log" & S=$!
for _ in $(seq 1 200); do [ -f "$MNT/demo/tls/ca.pem" ] && (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
export FIELDSYNC_DATA_DIR="$AGENT"
echo field-demo | "$BIN" enroll --server "https://localhost:$PORT" --ca-cert "$MNT/demo/tls/ca.pem" --user eve --password-stdin >/dev/null || echo "ENROLL_FAILED"
"$BIN" sync >/dev/null || echo "SYNC0_FAILED"
for i in $(seq 1 40); do "$BIN" note wo-1001 "note $i $(head -c 3000 /dev/zero | tr '\0' y)" >/dev/null; done
dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
echo "FREE_KB=$(df --output=avail "$MNT" | tail -1 | tr -d ' ')"
"$BIN" sync 2>&1; echo "SYNC1_EXIT=$?"
"$BIN" info --json | grep -o '"pending_ops": [0-9]*' | sed 's/^/AFTER_FULL /'
rm -f "$MNT/fill"
"$BIN" sync --json | tr -d ' \n'; echo; echo "SYNC2_EXIT=$?"
"$BIN" show wo-1001 --json | grep -c '"text": "note ' | sed 's/^/NOTES=/'
kill $S; wait $S; echo "SERVER_EXIT=$?"
