-- The dnsmasq replacement: iPXE gets the script, everything else gets undionly.kpxe.
return {
  name = "default",
  dhcp = function(req)
    if req.ipxe then
      return { filename = config.script or "bootstrap.ipxe", note = "ipxe" }
    end
    return { filename = config.loader or "undionly.kpxe", next_server = config.next_server }
  end,
}
