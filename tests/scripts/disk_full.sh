#!/usr/bin/env bash
# Run inside `unshare -rm` (a private mount namespace): put an agent's data dir on a tiny
# tmpfs, fill it while the daemon holds the store open, and try to record a change.
# Args: AGENT_BIN SOURCE_DATA_DIR MOUNT_POINT ORDER_ID
set -u
BIN=$1; SRC=$2; MNT=$3; ORDER=$4
mount -t tmpfs -o size=2m tmpfs "$MNT" || { echo "MOUNT_FAILED"; exit 3; }
cp -r "$SRC" "$MNT/agent"
export FIELDSYNC_DATA_DIR="$MNT/agent" FIELDSYNC_SERVER=http://127.0.0.1:9 FIELDSYNC_LOG=error
"$BIN" daemon & D=$!
sleep 0.5
"$BIN" note "$ORDER" "before full" >/dev/null && echo "NOTE1_OK"
dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
echo "FREE_KB=$(df --output=avail "$MNT" | tail -1 | tr -d ' ')"
"$BIN" note "$ORDER" "$(head -c 6000 /dev/zero | tr '\0' x)" 2>&1; echo "NOTE2_EXIT=$?"
rm -f "$MNT/fill"
"$BIN" info --json | grep -o '"pending_ops": [0-9]*' | sed 's/^/AFTER_FULL /'
"$BIN" note "$ORDER" "after space freed" >/dev/null && echo "NOTE3_OK"
"$BIN" info --json | grep -o '"pending_ops": [0-9]*' | sed 's/^/AFTER_FREE /'
echo "INTEGRITY=$(sqlite3 "$MNT/agent/agent.db" 'PRAGMA integrity_check' 2>/dev/null || echo unchecked)"
kill $D; wait $D
