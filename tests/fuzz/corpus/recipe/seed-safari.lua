-- Safari: improvements to the browser application itself.
-- Digests are of the sample image's files (recipes/sample.sh).

-- The device's macOS version, from SystemVersion.plist, or nil.
local function os_version()
  local plist = bsi.read("System/Library/CoreServices/SystemVersion.plist", 4096)
  return plist and plist:match("<key>ProductVersion</key>%s*<string>([%d.]+)</string>")
end

local function on_26_0()
  local v = os_version()
  if v ~= "26.0" then
    return false, "requires macOS 26.0 (device has " .. (v or "no version file") .. ")"
  end
  return true
end

return {
  component = "safari",
  improvements = {
    {
      id = "safari-26.0.1-a",
      summary = "Safari: a crafted redirect could spoof the address bar",
      fixes = { "CVE-2026-20201" },
      severity = "critical",
      when = on_26_0,
      apply = function(change)
        change:replace("Applications/Safari.app/Contents/MacOS/Safari", {
          from = "sha256:6c58a6abbaedfcb36f137bdf56acc20224694a407d6bf057a074ed8916f5286d",
          to = "sha256:0182f4612fd99f3b525e4a236fbca4b0460abb3220dce1d5df60f64bda7e5651",
          payload = "payloads/safari/Safari-26.0.1",
        })
        change:restart("com.apple.Safari")
      end,
    },
    {
      id = "safari-26.0.1-b",
      summary = "Safari: Safe Browsing lookups leaked the full URL of private tabs",
      fixes = { "CVE-2026-20207" },
      severity = "medium",
      when = on_26_0,
      apply = function(change)
        change:replace("Applications/Safari.app/Contents/Frameworks/SafariShared", {
          from = "sha256:f62c8bc3526b0d58da61ba47bdbd4bf3440db36bd975a954e16b5c80cf353c93",
          to = "sha256:5922ea3c45425ab17837da2a9408cb57fbc2ea515e61633bb04f8b95f02d0559",
          payload = "payloads/safari/SafariShared-26.0.1",
        })
        change:restart("com.apple.Safari.SafeBrowsing")
      end,
    },
  },
}
