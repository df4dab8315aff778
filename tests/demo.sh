#!/bin/sh
# The whole path on an embedded default: a demo signing key, a signed
# sample feed, a sample device image; enroll, sync, preview, apply, status,
# notes, history, rollback, verify, and an attack refused.
#
#   tests/demo.sh BUILD_DIR [WORK_DIR]
#
# Everything happens in WORK_DIR (default: a new temporary directory); the
# device is a directory, and restarts are recorded in a file, not performed.
set -eu

build=$(cd "${1:?usage: demo.sh BUILD_DIR [WORK_DIR]}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
work=${2:-$(mktemp -d "${TMPDIR:-/tmp}/bsi-demo-XXXXXX")}
mkdir -p "$work"
work=$(cd "$work" && pwd)
feed=$work/feed device=$work/device state=$work/state conf=$work/bsi.conf

if [ -t 1 ]; then
	heading() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	heading() { printf '\n== %s\n' "$*"; }
fi
say() { printf '%s\n' "$*"; }
# run bsi against the demo device, echoing the command first
bsi() {
	printf '$ bsi %s\n' "$*"
	"$build/bsi" --root "$device" --state "$state" --config "$conf" "$@"
}
gitf() { git -C "$feed" "$@"; }
# the team's side, in the feed working tree, echoing the command first
team() {
	printf '$ %s\n' "$*" | sed "s|$feed/||g; s|$feed|.|g; s|$work/|~/|g; s|$build/||g"
	(cd "$feed" && "$@")
}

heading "1. The security team's signing key and feed (README: Start a feed)"
ssh-keygen -q -t ed25519 -N '' -C security-team@example -f "$work/team_key"
say "\$ ssh-keygen -t ed25519 -f ~/team_key -C security-team@example"
say "signing key: $(ssh-keygen -lf "$work/team_key.pub")"
mkdir -p "$feed"
team git init -q -b main
team git config user.name "Security Team"
team git config user.email security-team@example
team git config gpg.format ssh
team git config user.signingKey "$work/team_key"
team git config commit.gpgSign true
mkdir -p "$feed/.bsi" "$feed/recipes"
say "\$ echo \"security-team@example namespaces=\\\"git\\\" \$(cat ~/team_key.pub)\" > .bsi/signers"
printf 'security-team@example namespaces="git" %s\n' "$(cat "$work/team_key.pub")" > "$feed/.bsi/signers"
say "\$ cp recipes/*.lua feed/recipes/ && recipes/sample.sh payloads feed/payloads"
cp "$src"/recipes/*.lua "$feed/recipes/"
sh "$src/recipes/sample.sh" payloads "$feed/payloads"
team "$build/bsi" recipe check recipes/corelibs.lua recipes/safari.lua recipes/webkit.lua
team git add -A
team git commit -q -m "Safari, WebKit and core library improvements for 26.0"
intro=$(gitf rev-parse HEAD)
say "feed: $feed, signed commit $intro"
team "$build/bsi" feed verify .

heading "2. A device running macOS 26.0 (a directory standing in for /)"
sh "$src/recipes/sample.sh" image current "$device"
printf 'service_manager = "record"  -- restarts are written to %s/restarts.log\n' "$state" > "$conf"
say "device: $device"

heading "3. Enroll the device and sync the signed feed"
bsi enroll "file://$feed" --introduction "$intro" --signer "$(cat "$work/team_key.pub")"
bsi sync

heading "4. Preview: what would change, touching nothing"
bsi plan

heading "5. Apply every pending improvement, one transaction each"
bsi apply
say "services restarted (record plugin):"
sed 's/^/  /' "$state/restarts.log"

heading "6. Status, notes and history"
bsi status
bsi show webkit-26.0.2-a
bsi history

heading "7. Roll one improvement back"
bsi rollback safari-26.0.1-a
bsi status | grep safari
bsi verify

heading "8. An attack: a commit signed by a key the feed does not authorize"
ssh-keygen -q -t ed25519 -N '' -C mallory@example -f "$work/mallory_key"
cp "$device/usr/lib/libSystem.B.dylib" "$work/evil"
printf 'backdoor\n' >> "$work/evil"
cp "$work/evil" "$feed/payloads/corelibs/libSystem-26.0.1"
gitf -c user.signingKey="$work/mallory_key" commit -q -a -m "Totally legitimate update"
say "the feed's head is now $(gitf rev-parse HEAD), signed by $(ssh-keygen -lf "$work/mallory_key.pub")"
set +e
bsi sync
rc=$?
set -e
say "bsi sync exited $rc (3: trust refused); the trusted head did not move:"
bsi status | sed -n 2,3p

heading "Done"
say "work directory: $work"
