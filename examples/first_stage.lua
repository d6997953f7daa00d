-- first_stage.lua: a module the examples share through require("first_stage"). Firmware that
-- is not running iPXE yet is sent to it: BIOS gets undionly.kpxe, UEFI gets ipxe.efi, both by
-- TFTP from this server.
return function(req)
  local file = (req.firmware == "uefi") and "ipxe.efi" or "undionly.kpxe"
  return { filename = file, next_server = server.tftp_address(req) or req.server_address, note = "first stage: " .. file }
end
