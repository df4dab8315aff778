#!/bin/sh
# Generate the seed corpus of every fuzz target into tests/fuzz/corpus/NAME
# from real tools: signatures from `ssh-keygen -Y sign`, commits from
# `git commit -S` with gpg.format=ssh (`git cat-file commit`), allowed_signers
# lines, and the reference configurations and recipes.  Deterministic file
# names (seed-*), so re-running replaces the seeds and keeps the regression
# inputs (regress-*) that sit beside them.
#
#   sh tests/fuzz/make-corpus.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
corpus="$here/corpus"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for t in sshsig sshsig_blob commitsig signers config recipe changeset_json; do
	mkdir -p "$corpus/$t"
	rm -f "$corpus/$t"/seed-*
done

# --- keys and SSHSIG signatures ------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C dev@example.org -f "$tmp/key"
ssh-keygen -q -t ed25519 -N '' -C other@example.org -f "$tmp/key2"
printf 'hello\n' >"$tmp/data"
ssh-keygen -q -Y sign -n git -f "$tmp/key" "$tmp/data"
cp "$tmp/data.sig" "$corpus/sshsig/seed-git-sha512.sig"
rm -f "$tmp/data.sig"
ssh-keygen -q -Y sign -n file -f "$tmp/key2" "$tmp/data"
cp "$tmp/data.sig" "$corpus/sshsig/seed-file-namespace.sig"
rm -f "$tmp/data.sig"
ssh-keygen -q -t rsa -b 1024 -N '' -f "$tmp/rsa" 2>/dev/null &&
	ssh-keygen -q -Y sign -n git -f "$tmp/rsa" "$tmp/data" &&
	cp "$tmp/data.sig" "$corpus/sshsig/seed-rsa.sig" || true

# --- signed commits -----------------------------------------------------
repo="$tmp/repo"
git init -q "$repo"
git -C "$repo" config user.name Dev
git -C "$repo" config user.email dev@example.org
git -C "$repo" config gpg.format ssh
git -C "$repo" config user.signingkey "$tmp/key"
mkdir -p "$repo/.bsi"
printf 'dev@example.org %s\n' "$(cat "$tmp/key.pub")" >"$repo/.bsi/signers"
git -C "$repo" add .bsi/signers
GIT_COMMITTER_DATE='1700000000 +0000' GIT_AUTHOR_DATE='1700000000 +0000' \
	git -C "$repo" commit -q -S -m 'feed: first signers'
git -C "$repo" cat-file commit HEAD >"$corpus/commitsig/seed-root.commit"
echo x >"$repo/x"
git -C "$repo" add x
GIT_COMMITTER_DATE='1700000100 +0000' GIT_AUTHOR_DATE='1700000100 +0000' \
	git -C "$repo" commit -q -S -m 'a change

with a body that mentions gpgsig and
 -----BEGIN SSH SIGNATURE-----'
git -C "$repo" cat-file commit HEAD >"$corpus/commitsig/seed-child.commit"
git -C "$repo" checkout -q -b side HEAD~1
echo y >"$repo/y"
git -C "$repo" add y
GIT_COMMITTER_DATE='1700000200 +0000' GIT_AUTHOR_DATE='1700000200 +0000' \
	git -C "$repo" commit -q -S -m side
git -C "$repo" checkout -q -
GIT_COMMITTER_DATE='1700000300 +0000' GIT_AUTHOR_DATE='1700000300 +0000' \
	git -C "$repo" merge -q -S --no-edit side
git -C "$repo" cat-file commit HEAD >"$corpus/commitsig/seed-merge.commit"
git -C "$repo" -c commit.gpgsign=false commit -q --allow-empty -m unsigned
git -C "$repo" cat-file commit HEAD >"$corpus/commitsig/seed-unsigned.commit"
# the gpgsig header of a real commit is also a real armored signature
sed -n '/^gpgsig /,/END SSH SIGNATURE/p' "$corpus/commitsig/seed-child.commit" |
	sed 's/^gpgsig //; s/^ //' >"$corpus/sshsig/seed-from-commit.sig"

# --- allowed_signers -----------------------------------------------------
pub=$(cat "$tmp/key.pub")
pub2=$(cut -d' ' -f1,2 "$tmp/key2.pub")
printf 'dev@example.org %s\n' "$pub" >"$corpus/signers/seed-one"
printf '# team\n\ndev@example.org,ops@example.org namespaces="git,file" %s\n*@example.org namespaces="!git" %s\n' \
	"$pub" "$pub2" >"$corpus/signers/seed-options"
printf '"quoted principal" namespaces="g*t" %s comment here\n' "$pub2" >"$corpus/signers/seed-quoted"
printf 'x cert-authority %s\ny valid-after="20250101" %s\n' "$pub" "$pub2" >"$corpus/signers/seed-refused"
[ -f "$tmp/rsa.pub" ] && printf 'r@example.org %s\n' "$(cat "$tmp/rsa.pub")" >"$corpus/signers/seed-rsa"

# --- the structured SSHSIG target: see fuzz_sshsig_blob.c for the format --
# An empty input is a valid signature; these flip one choice each.
: >"$corpus/sshsig_blob/seed-valid"
printf '\001' >"$corpus/sshsig_blob/seed-sha256"
printf '\000\006SSHSIG\004\000\000\000\001\013ssh-ed25519\000\003git\004abcd\006sha512' \
	>"$corpus/sshsig_blob/seed-reserved"
printf '\000\006SSHSIG\004\000\000\000\002' >"$corpus/sshsig_blob/seed-version2"

# --- configuration ---------------------------------------------------------
cat >"$corpus/config/seed-full" <<'CFG'
-- /etc/bsi/config
auto_install = true
require_ac_power = false
interval = "6h"
max_feed_age = 1209600
service_manager = "record"
plugin_dir = "/usr/lib/bsi/plugins"
ca_file = "/etc/ssl/certs/ca.pem"
recipe_cpu_seconds = 2.5
recipe_memory_mib = 64
recipe_wall_seconds = 10
fetch_max_mib = 1024
fetch_timeout = "1m"
maintenance_window = "02:00-05:00"
min_severity = "high"
restart_affected = true
power_supply_dir = "/sys/class/power_supply"
CFG
printf 'interval = "2w"\nmaintenance_window = "23:59-00:00"\n' >"$corpus/config/seed-window"
printf 'interval = os.time()\n' >"$corpus/config/seed-undefined"
printf 'local x = 1\nwhile true do x = x + 1 end\n' >"$corpus/config/seed-loop"
printf 'unknown_key = 1\n' >"$corpus/config/seed-unknown"

# --- recipes -----------------------------------------------------------
for r in "$top"/recipes/*.lua; do
	cp "$r" "$corpus/recipe/seed-$(basename "$r")"
done
cat >"$corpus/recipe/seed-sandbox.lua" <<'LUA'
local ok = pcall(function() bsi = nil end)
setmetatable({}, {__index = function() return 1 end})
local s = string.rep("a", 10) .. tostring(load("return 1")())
for w in string.gmatch(s, "a+") do bsi.log(w) end
return {
  component = "demo",
  improvements = {
    { id = "demo-1", summary = "x", fixes = { "CVE-2026-0001" }, severity = "low",
      supersedes = { "demo-0" },
      when = function() return false, "not here" end,
      apply = function(change)
        change:replace("usr/lib/libdemo.so", {
          from = "sha256:" .. string.rep("0", 64),
          to = "sha256:" .. string.rep("1", 64),
          payload = "payloads/demo/libdemo.so" })
        change:restart("demo.service")
      end },
  },
}
LUA

# --- change set JSON: see fuzz_changeset_json.c for the format -------------
printf 'webkit-26.1-a\000webkit\000JavaScriptCore: use-after-free\000critical\000CVE-2026-20101\000recipes/webkit.lua\000\000System/Library/x\000sha256:00\000sha256:11\000payloads/x\000com.apple.WebKit\000' \
	>"$corpus/changeset_json/seed-ascii"
printf 'caf\303\251-\360\237\224\222\000\377\376 not utf-8 \300\200\000"quotes" \\ and \001 control\000\355\240\200 surrogate\000' \
	>"$corpus/changeset_json/seed-bytes"

echo "corpus: $(find "$corpus" -type f | wc -l) files in $corpus"
