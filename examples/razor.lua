-- razor.lua: the seed's own use. Firmware without iPXE gets undionly.kpxe; once iPXE runs it
-- gets bootstrap.ipxe, generated here for that client, which chains to razor-server's
-- microkernel bootstrap. Nothing needs to sit in the TFTP root but undionly.kpxe.
--
-- config:
--   razor_url   base URL of razor-server      (default "http://razor:8150")
--   nic_max     razor's nic_max parameter     (default 4)
--   filename    first-stage file              (default "undionly.kpxe")

local razor = config.razor_url or "http://razor:8150"
local nic_max = config.nic_max or 4

return {
  name = "razor",

  dhcp = function(req)
    if not req.options[175] then
      return { filename = config.filename or "undionly.kpxe", next_server = req.server_address }
    end
    local s = ipxe.script()
    s:chain(razor .. "/api/microkernel/bootstrap?nic_max=" .. tostring(nic_max))
    return {
      filename = "bootstrap.ipxe",
      next_server = req.server_address,
      ipxe_script = s,
      note = "iPXE: chain to razor",
    }
  end,
}
