-- inventory.lua: per-machine profiles. A known MAC boots the kernel, initrd and command line
-- of its profile; an unknown machine boots a discovery image that reports it. Profiles come
-- from inventory_data.lua beside this file (or config.data names another module there).
--
-- Every firmware is first sent to iPXE (undionly.kpxe or ipxe.efi); the decision for iPXE
-- carries the generated script, served by TFTP under config.script_name.
--
-- config:
--   data            module with the profiles          (default "inventory_data")
--   discovery       profile for unknown machines      (table with kernel, initrd, cmdline)
--   script_name     name the generated script has     (default "machine.ipxe")

local first_stage = require("first_stage")
local machines = require(config.data or "inventory_data")
local discovery = config.discovery or {
  name = "discovery",
  kernel = "http://192.168.77.2:8080/discovery/vmlinuz",
  initrd = "http://192.168.77.2:8080/discovery/initrd.img",
  cmdline = "console=ttyS0 discovery=1",
}

local function script(profile, req)
  local s = ipxe.script()
  s:echo("bootpolicy: " .. req.mac .. " is " .. profile.name)
  s:kernel(profile.kernel, profile.cmdline)
  s:initrd(profile.initrd)
  s:boot()
  return s
end

return {
  name = "inventory",

  dhcp = function(req)
    if not req.ipxe then return first_stage(req) end
    local profile = machines[req.mac]
    local known = profile ~= nil
    profile = profile or discovery
    return {
      filename = config.script_name or "machine.ipxe",
      next_server = req.server_address,
      ipxe_script = script(profile, req),
      note = known and ("profile " .. profile.name) or "unknown machine: discovery",
    }
  end,
}
