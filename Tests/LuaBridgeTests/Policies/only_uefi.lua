return {
  dhcp = function(req)
    if req.firmware == "uefi" then
      return { filename = "ipxe.efi", options = { [66] = "10.0.0.1", [51] = 3600, [77] = { "a", "b" } } }
    end
  end,
}
