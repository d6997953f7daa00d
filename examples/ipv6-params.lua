-- DHCPv6 boot file parameters (option 60, RFC 5970) beside the boot file URL: the first
-- parameter is the file's size in 512-byte blocks for EDK2 (optional), the rest is free text
-- for the booted program. Each parameter goes on the wire as a 2-byte length and its text,
-- which string.pack(">s2", ...) writes. IPv4 requests pass to the next policy.
return {
  name = "ipv6-params",

  dhcp = function(req)
    if req.family ~= "ipv6" then return nil end
    local file = config.filename or "ipxe.efi"
    local params = string.pack(">s2", config.blocks or "")
    for _, p in ipairs(config.params or {}) do params = params .. string.pack(">s2", p) end
    return { filename = file, options = { [60] = params }, note = "DHCPv6 with boot parameters" }
  end,
}
