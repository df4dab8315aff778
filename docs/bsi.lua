---@meta
-- LuaLS definitions for bsi recipes: completion and type checks in editors.
-- recipes/.luarc.json points the language server here.

---@alias bsi.digest string  # "sha256:" followed by 64 lowercase hex digits
---@alias bsi.severity "low"|"medium"|"high"|"critical"

---The read-only queries a recipe may make of the device.  Every path is
---relative to the target root; `..`, absolute paths and symlinks that leave
---the root are refused.  Nothing here writes.
---@class bsi
bsi = {}

---The SHA-256 of a file under the target root.
---@param path string
---@return bsi.digest|nil digest nil when the file does not exist
function bsi.hash(path) end

---True when the file exists and has exactly this digest.
---@param path string
---@param digest bsi.digest
---@return boolean
function bsi.verify(path, digest) end

---True when the path exists under the target root.
---@param path string
---@return boolean
function bsi.exists(path) end

---At most `max` bytes (never more than 64 KiB) of a small file, such as a
---version file.  A file that holds more than its size says (one of /proc
---or /sys) is an error: its bytes change from run to run.
---@param path string
---@param max integer
---@return string|nil contents nil when the file does not exist
function bsi.read(path, max) end

---The device's OS version: ProductVersion of
---System/Library/CoreServices/SystemVersion.plist, else VERSION_ID of
---etc/os-release, under the target root.
---@return string|nil version nil when neither file says (or under `recipe check`)
function bsi.os_version() end

---A line in bsi's log (stderr on a terminal), prefixed with the recipe file.
---@param message string
function bsi.log(message) end

---@class bsi.ReplaceSpec
---@field from bsi.digest the digest the device's file must have now
---@field to bsi.digest the digest of the payload, and of the file afterwards
---@field payload string the payload's path in the feed, e.g. "payloads/webkit/JavaScriptCore-26.0.1"

---The change an improvement records.  Recording does nothing on the
---device: the host previews or applies exactly what was recorded.
---@class bsi.Change
local Change = {}

---Replace a file under the target root with a payload from the feed.
---@param path string
---@param spec bsi.ReplaceSpec
function Change:replace(path, spec) end

---Restart a service after the files are in place.
---@param service string
function Change:restart(service) end

---@class bsi.Improvement
---@field id string unique across the feed, e.g. "webkit-26.0.1-a"
---@field summary string one line: what it fixes
---@field fixes string[] CVE ids
---@field severity bsi.severity
---@field supersedes? string[] ids of earlier improvements this one replaces
---@field when? fun(): boolean, string? false (and a reason) when it does not apply here
---@field apply fun(change: bsi.Change)

---@class bsi.Recipe
---@field component string e.g. "webkit"
---@field improvements bsi.Improvement[]
