-- Lots of garbage next to a large live table: allocations get refused at the cap, Lua's
-- emergency collection frees the garbage, and the hook must still succeed.
local live = {}
for i = 1, 40 do live[i] = string.rep(string.char(64 + i % 26), 100 * 1024) end
return {
  dhcp = function(req)
    local n = 0
    for i = 1, 60 do
      local s = string.rep("z", 256 * 1024 + i)
      n = n + #s
    end
    return { note = tostring(n) .. " " .. #live }
  end,
}
