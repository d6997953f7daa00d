-- default.lua: the dnsmasq ProxyDHCP rule that bootpolicy replaces, as a policy.
--
-- It reproduces, in its working form,
--   dnsmasq --dhcp-range=ADDR,proxy --dhcp-match=IPXEBOOT,175 \
--           --dhcp-boot=net:IPXEBOOT,bootstrap.ipxe,,ADDR --dhcp-boot=undionly.kpxe,,ADDR \
--           --pxe-prompt=PXE,0 --enable-tftp --tftp-root=/tftpboot
-- A request that carries option 175 (iPXE is running) gets bootstrap.ipxe; every other PXE
-- request gets undionly.kpxe, UEFI firmware included (as with dnsmasq: arch-aware.lua is the
-- policy that fixes UEFI). next-server is this server unless the config names another.
-- UEFI HTTP boot (vendor class HTTPClient) gets no answer, as from dnsmasq, whose proxy serves
-- vendor class PXEClient only: the policy passes, so a later policy in the chain may answer.
--
-- config (all optional):
--   filename       file for firmware without iPXE   (default "undionly.kpxe")
--   ipxe_filename  file once iPXE runs (option 175)  (default "bootstrap.ipxe")
--   next_server    TFTP server address              (default: the address the request reached)

local bios_file = config.filename or "undionly.kpxe"
local ipxe_file = config.ipxe_filename or "bootstrap.ipxe"

return {
  name = "default",

  dhcp = function(req)
    local vc = req.vendor_class
    if vc and vc:find("HTTPClient", 1, true) == 1 then return nil end
    -- dnsmasq's --dhcp-match=IPXEBOOT,175 tests for the option's presence, nothing more.
    -- iPXE: option 175 over DHCPv4; over DHCPv6 (which has no 175) its user class "iPXE".
    local is_ipxe = req.options[175] ~= nil or (req.family == "ipv6" and req.ipxe)
    local file = is_ipxe and ipxe_file or bios_file
    return {
      filename = file,
      next_server = config.next_server or req.server_address,
      note = is_ipxe and (req.family == "ipv6" and "user class iPXE" or "option 175: iPXE") or "no option 175",
    }
  end,
}
