-- Work that runs inside the libraries' C code, where the count hook never fires: only their
-- charges (Sources/CLuaShim/strlib.c, and bp_alloc's for big allocations) stop it.
-- config.what picks one. Its big input is made here, at load, so the hook spends its budget
-- on the attack alone (and only that one, so the 32 MiB cap leaves room for the copies the
-- attack makes).
local what = config.what
local function input(name)
  if name == "parens" then return string.rep("(", 200000) end
  if name == "four_mb" then return string.rep("aaaaaaaaaaaaaaaa", 256 * 1024) end
  if name == "ten_mb" then return string.rep("xxxxxxxxxxxxxxxx", 640 * 1024) end
  if name == "items" then
    local t = {}
    for i = 1, 100000 do t[i] = "" end
    return t
  end
end
local uses = { balance = "parens", pcall = "parens", long_pattern = "four_mb", long_plain = "four_mb",
  gsub = "four_mb", gmatch = "four_mb", format = "four_mb", upper = "ten_mb", concat = "items",
  sort = "items", insert = "items", unpack = "items", utf8_len = "four_mb", tonumber = "four_mb",
  concat_op = "ten_mb" }
local big = input(uses[what])
local dots = string.rep(".", 3999) .. "b"         -- 4,000 characters, no quantifier
local needle = string.rep("a", 3999) .. "b"       -- the same without specials: a plain search
local thirty = string.rep("a", 30) .. "b"
-- Lua patterns have no nested quantifiers; a run of greedy items over a subject that almost
-- matches is their exponential-looking case: C(30 + 12, 12) ways to split the a's.
local greedy = string.rep("a*", 12) .. "c"

local attacks = {
  balance = function() return big:find("%b()") end,
  long_pattern = function() return big:find(dots) end,
  long_plain = function()
    for _ = 1, 1000 do big:find(needle, 1, true) end
  end,
  backtrack = function() return thirty:match(greedy) end,
  lazy = function() return thirty:find("(.-)(.-)(.-)(.-)(.-)(.-)c") end,
  upper = function()
    for _ = 1, 200 do big:upper() end
  end,
  gsub = function()
    for _ = 1, 1000 do big:gsub("a", "b") end
  end,
  gmatch = function()
    for _ = 1, 1000 do for _ in big:gmatch("a") do end end
  end,
  concat = function()
    for _ = 1, 100000 do table.concat(big) end
  end,
  format = function()
    for _ = 1, 1000 do string.format("%s%s", big, "") end
  end,
  rep = function()
    for _ = 1, 1000 do local _ = ("ab"):rep(2 << 20) end
  end,
  huge_rep = function() return ("x"):rep(1 << 30) end,
  move = function() return table.move({}, 1, 1e12, 1) end, -- one call: hours in stock Lua
  sort = function()
    for _ = 1, 1000 do table.sort(big) end
  end,
  insert = function()
    for _ = 1, 100000 do table.insert(big, 1, "") end
  end,
  unpack = function()
    for _ = 1, 100000 do table.unpack(big) end
  end,
  utf8_len = function()
    for _ = 1, 1000 do utf8.len(big) end
  end,
  packsize = function() return string.packsize(string.rep("b", 8 << 20)) end,
  -- Not a library call at all: one VM instruction that copies 10 MB.
  concat_op = function()
    for _ = 1, 1000000 do local _ = big .. "x" end
  end,
  tonumber = function()
    for _ = 1, 100000 do tonumber(big) end
  end,
  -- A policy that catches the error and keeps going is still stopped.
  pcall = function()
    while true do
      pcall(string.find, big, "%b()")
      pcall(function() return thirty:match(greedy) end)
    end
  end,
}

return {
  dhcp = function(req)
    local r = attacks[what]()
    return { note = tostring(r) }
  end,
}
