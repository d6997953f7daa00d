-- Every hook tries to leave the sandbox; config.what picks how.
local tries = {
  os = function() return os.execute("id") end,
  io = function() return io.open("/etc/passwd") end,
  load = function() return load("return 1") end,
  loadfile = function() return loadfile("/etc/passwd") end,
  dofile = function() return dofile("/etc/passwd") end,
  dump = function() return string.dump(function() end) end,
  require_up = function() return require("../escape") end,
  require_abs = function() return require("/etc/passwd") end,
  require_dot = function() return require("sub.mod") end,
  strmeta = function() return getmetatable("").__index end,
  gc = function() return collectgarbage("collect") end,
  debug = function() return debug.getinfo(1) end,
  package = function() return package.loaded end,
  gc_meta = function() return setmetatable({}, { __gc = function() while true do end end }) end,
  reqmeta = function(req) getmetatable(req).__index = nil end,
  scriptmeta = function() return getmetatable(ipxe.script()).render() end,
}
return { dhcp = function(req) tries[config.what](req) return { filename = "escaped" } end }
