-- Core libraries: the C library, the TLS library and the image decoders.

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
  component = "corelibs",
  improvements = {
    {
      id = "corelibs-26.0.1-tls",
      summary = "BoringSSL: a malformed certificate chain could skip name checks",
      fixes = { "CVE-2026-20301" },
      severity = "high",
      when = on_26_0,
      apply = function(change)
        change:replace("usr/lib/libboringssl.dylib", {
          from = "sha256:bdc4cb8c8438b200394701ca66a3926419251c1f1ccfc7c7491694f8f09da661",
          to = "sha256:94a5f78ad7e6c61d0ad2dc81f1c88414e284f7136713f87629fbee39627feb7d",
          payload = "payloads/corelibs/libboringssl-26.0.1",
        })
        change:restart("com.apple.trustd")
      end,
    },
    {
      id = "corelibs-26.0.1-imageio",
      summary = "ImageIO: heap overflow decoding a crafted WebP image",
      fixes = { "CVE-2026-20302" },
      severity = "critical",
      when = on_26_0,
      apply = function(change)
        change:replace("System/Library/Frameworks/ImageIO.framework/Versions/A/ImageIO", {
          from = "sha256:bf8d0206517dbb3a8aca177763b77b2a8f62c2e006172eba0656d46ae5cd8393",
          to = "sha256:273d7ac6f72d6778d3ae66d744bf103309ebd17dc6a0d1380a5c4f857360dde1",
          payload = "payloads/corelibs/ImageIO-26.0.1",
        })
        change:restart("com.apple.quicklook.ThumbnailsAgent")
      end,
    },
    {
      id = "corelibs-26.0.1-libc",
      summary = "libSystem: integer overflow in strtod on very long inputs",
      fixes = { "CVE-2026-20303" },
      severity = "medium",
      when = on_26_0,
      apply = function(change)
        change:replace("usr/lib/libSystem.B.dylib", {
          from = "sha256:39d63693bd7385663cd29ec240a9b7afc67501c0ba23c172245db2d74b081125",
          to = "sha256:a6ec9c9ccd5046bc35461c460f5e33c7122a610a767d450d3ce70e563540111f",
          payload = "payloads/corelibs/libSystem-26.0.1",
        })
      end,
    },
  },
}
