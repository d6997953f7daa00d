-- netboot-once.lua: the first network boot installs, every later one goes to the local disk.
-- It remembers, per MAC, that the installer was handed out (state survives across the DHCP,
-- TFTP and HTTP requests of the client and across reloads, for config.remember seconds; run
-- `serve --state FILE` so that it survives restarts too, or a restart reinstalls every machine).
-- To reinstall a machine, let its state expire, or stop bootpolicy and delete its row from the
-- state file (docs/state.md).
--
-- config:
--   installer   table with kernel, initrd, cmdline        (required)
--   remember    seconds to remember an install             (default 86400)

local first_stage = require("first_stage")
local installer = config.installer or {}

return {
  name = "netboot-once",

  dhcp = function(req)
    if not req.ipxe then return first_stage(req) end
    local s = ipxe.script()
    local seen = state.get(req.mac)
    if seen and seen.installed then
      s:echo("bootpolicy: " .. req.mac .. " was installed; booting from disk")
      s:exit()
      return { filename = "once.ipxe", next_server = req.server_address, ipxe_script = s, note = "already installed: local disk" }
    end
    state.set(req.mac, { installed = true, first_xid = req.xid or 0 }, config.remember or 86400)
    s:echo("bootpolicy: installing " .. req.mac)
    s:kernel(installer.kernel or "vmlinuz", installer.cmdline)
    if installer.initrd then s:initrd(installer.initrd) end
    s:boot()
    return { filename = "once.ipxe", next_server = req.server_address, ipxe_script = s, note = "first boot: install" }
  end,
}
