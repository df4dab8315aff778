-- WebKit and JavaScriptCore: the engine every browser view uses.
-- webkit-26.0.2-a supersedes webkit-26.0.1-a: it carries the same fix
-- plus a second one, and accepts a device that already has 26.0.1-a.

local function os_version()
  local plist = bsi.read("System/Library/CoreServices/SystemVersion.plist", 4096)
  return plist and plist:match("<key>ProductVersion</key>%s*<string>([%d.]+)</string>")
end

local function has_webkit_26_0()
  if not bsi.exists("System/Library/Frameworks/WebKit.framework/WebKit") then
    return false, "WebKit is not installed"
  end
  local v = os_version()
  if v ~= "26.0" then
    return false, "requires macOS 26.0 (device has " .. (v or "no version file") .. ")"
  end
  return true
end

local JSC = "System/Library/Frameworks/JavaScriptCore.framework/Versions/A/JavaScriptCore"
local JSC_26_0 = "sha256:fc067a509854db566063442bfe4c97cf11affca63b709f6eb177d071bb046085"

return {
  component = "webkit",
  improvements = {
    {
      id = "webkit-26.0.1-a",
      summary = "JavaScriptCore: use-after-free in the DFG JIT",
      fixes = { "CVE-2026-20101" },
      severity = "critical",
      when = has_webkit_26_0,
      apply = function(change)
        change:replace(JSC, {
          from = JSC_26_0,
          to = "sha256:b35276ceecaf62de956a310bd4a004fbee7b3108381af8cead4752bc6b497012",
          payload = "payloads/webkit/JavaScriptCore-26.0.1",
        })
        change:restart("com.apple.WebKit.WebContent")
      end,
    },
    {
      id = "webkit-26.0.2-a",
      summary = "WebKit: type confusion in layout; includes the DFG JIT fix of 26.0.1-a",
      fixes = { "CVE-2026-20101", "CVE-2026-20144" },
      severity = "high",
      supersedes = { "webkit-26.0.1-a" },
      when = has_webkit_26_0,
      apply = function(change)
        change:replace("System/Library/Frameworks/WebKit.framework/Versions/A/WebKit", {
          from = "sha256:14d50e839255070316d803b14a51e8997aba36a8772eb3d5c3d84775d2388882",
          to = "sha256:2c874a783c7b663556793e360b2f79c634bff406ad90aa242078bcd62d904abc",
          payload = "payloads/webkit/WebKit-26.0.2",
        })
        change:replace(JSC, {
          from = JSC_26_0,
          to = "sha256:46643c75bc3130c70ba184b977c90fadfff01fc1b4e850ab929aa6fef65ad6ae",
          payload = "payloads/webkit/JavaScriptCore-26.0.2",
        })
        change:restart("com.apple.WebKit.WebContent")
        change:restart("com.apple.WebKit.Networking")
      end,
    },
  },
}
