-- inventory.lua: per-machine profiles from a file operators edit. A known MAC boots the
-- kernel, initrd and command line of its row in data.machines; an unknown machine boots a
-- discovery image that reports it.
--
-- The configuration names the file (an export of the site's CMDB, say) and indexes it by MAC:
--   data:
--     machines: { file: data/machines.csv, key: mac, key_format: mac }
-- Columns: mac, name, kernel, initrd, cmdline. A path starting with "/" is served by this
-- server: it becomes server.http_url(req) .. path, in cmdline too (url=/preseed/web.cfg).
-- An edit to the file is picked up within a second; a broken one is refused with its line.
--
-- Every firmware is first sent to iPXE (undionly.kpxe or ipxe.efi); the decision for iPXE
-- carries the generated script, served by TFTP under config.script_name.
--
-- config:
--   discovery       profile for unknown machines      (table with kernel, initrd, cmdline)
--   script_name     name the generated script has     (default "machine.ipxe")

local first_stage = require("first_stage")
local discovery = config.discovery or {
  name = "discovery",
  kernel = "/discovery/vmlinuz",
  initrd = "/discovery/initrd.img",
  cmdline = "console=ttyS0 discovery=1",
}

-- "/x" -> "http://SERVER:PORT/x", in a URL field or after "=" in a command line.
local function here(req, text)
  if text == nil then return nil end
  local base = server.http_url(req) or ""
  return (text:gsub("^/", base .. "/"):gsub("=/", "=" .. base .. "/"))
end

local function script(profile, req)
  local s = ipxe.script()
  s:echo("bootpolicy: " .. req.mac .. " is " .. profile.name)
  s:kernel(here(req, profile.kernel), here(req, profile.cmdline))
  s:initrd(here(req, profile.initrd))
  s:boot()
  return s
end

return {
  name = "inventory",

  dhcp = function(req)
    if not req.ipxe then return first_stage(req) end
    local machines = data.machines or {}
    local profile = machines[req.mac]
    local known = profile ~= nil
    profile = profile or discovery
    return {
      filename = config.script_name or "machine.ipxe",
      next_server = server.tftp_address(req) or req.server_address,
      ipxe_script = script(profile, req),
      note = known and ("profile " .. profile.name) or "unknown machine: discovery",
    }
  end,
}
