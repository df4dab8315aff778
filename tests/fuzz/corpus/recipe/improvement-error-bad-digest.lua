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
          from = "sha532:" .. string.rep("0", 64),
          to = "sha256:" .. string.rep("1", 64),
          payload = "payloads/demo/libdemo.so" })
        change:restart("demo.service")
      end },
  },
}
