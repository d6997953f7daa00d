-- The default policy must answer as dnsmasq's seed rule does, on requests recorded from real
-- firmware (fixtures/requests: QEMU's iPXE ROM and OVMF in the lab, a PXE BIOS capture).
local F = "../fixtures/requests/"
local server = { server_address = "192.168.77.2" }
local chain = policy_chain { { file = "default.lua" } }

test("PXE BIOS firmware gets undionly.kpxe from this server", function()
  local d = chain:dhcp(fixture(F .. "pxe-bios-discover.json", server))
  eq(d.filename, "undionly.kpxe")
  eq(d.next_server, "192.168.77.2")
  eq(d.policy, "default")
end)

test("iPXE (option 175 present) gets bootstrap.ipxe", function()
  local d = chain:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json", server))
  eq(d.filename, "bootstrap.ipxe")
  eq(d.next_server, "192.168.77.2")
end)

test("UEFI firmware gets undionly.kpxe, exactly as dnsmasq does", function()
  eq(chain:dhcp(fixture(F .. "ovmf-pxe-discover.json", server)).filename, "undionly.kpxe")
  eq(chain:dhcp(fixture(F .. "ovmf-pxe-request-4011.json", server)).filename, "undionly.kpxe")
end)

test("the user class alone does not count: dnsmasq matches option 175 only", function()
  local req = fixture(F .. "pxe-bios-discover.json", { user_class = { "iPXE" }, server_address = "192.168.77.2" })
  eq(chain:dhcp(req).filename, "undionly.kpxe")
end)

test("file names and next-server come from the config", function()
  local custom = policy_chain { { file = "default.lua", config = {
    filename = "ipxe.pxe", ipxe_filename = "chain.ipxe", next_server = "10.0.0.9" } } }
  local d = custom:dhcp(fixture(F .. "pxe-bios-discover.json", server))
  eq(d.filename, "ipxe.pxe")
  eq(d.next_server, "10.0.0.9")
  eq(custom:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json", server)).filename, "chain.ipxe")
end)

test("the default policy leaves TFTP and HTTP to the file roots", function()
  silent(chain:tftp(request { mac = "52:54:00:77:00:01", path = "undionly.kpxe" }))
  silent(chain:http(request { mac = "52:54:00:77:00:01", path = "/boot.ipxe" }))
end)

test("iPXE running on UEFI (recorded) gets bootstrap.ipxe", function()
  eq(chain:dhcp(fixture(F .. "ovmf-ipxe-efi-discover.json", server)).filename, "bootstrap.ipxe")
end)

test("UEFI HTTP boot (HTTPClient) gets no answer, as from dnsmasq", function()
  silent(chain:dhcp(fixture(F .. "ovmf-httpboot-discover.json", server)))
  silent(chain:dhcp(fixture(F .. "ovmf-httpboot-request.json", server)))
end)

-- What goes on the wire, not only the decision: chain:reply answers as the server would.
test("the reply to PXE BIOS is dnsmasq's: broadcast OFFER, file and siaddr, PXE menu", function()
  local r = chain:reply(fixture(F .. "pxe-bios-discover.json", { server_address = "192.168.77.2" }))
  eq(r.message_type, "offer")
  eq(r.to, "255.255.255.255")
  eq(r.port, 68)
  eq(r.file, "undionly.kpxe")
  eq(r.siaddr, "192.168.77.2")
  eq(r.options[54], "\192\168\77\2", "server identifier")
  eq(r.options[60], "PXEClient")
  eq(r.options[43], "\6\1\8\10\4\0PXE\255", "discovery control 8, prompt PXE timeout 0")
  is_nil(r.options[67], "no option 67 (dnsmasq sends none)")
end)

test("a client that is not PXE gets no answer, as from dnsmasq", function()
  local r = chain:reply(request { mac = "52:54:00:00:03:01", message_type = "discover", vendor_class = "MSFT 5.0" })
  eq(r.silent, "not_pxe")
end)

test("a relayed request is answered to its relay, option 82 echoed", function()
  local r = chain:reply(fixture(F .. "relayed-pxe-bios-discover.json", { server_address = "192.168.77.2" }))
  eq(r.to, "10.7.0.1")
  eq(r.port, 67)
  eq(r.giaddr, "10.7.0.1")
  contains(r.options[82], "rack7")
end)

test("relay facts: option 82 ids as text when printable, else hex; always as hex too", function()
  local bios = fixture(F .. "relayed-pxe-bios-discover.json")
  eq(bios.relay.giaddr, "10.7.0.1")
  eq(bios.relay.circuit_id, "rack7/port12")
  eq(bios.relay.remote_id, "001b21aabbcc", "binary: hex")
  eq(bios.relay.circuit_id_hex, "7261636b372f706f72743132")
  local uefi = fixture(F .. "relayed-ovmf-pxe-discover.json")
  eq(uefi.relay.circuit_id, "000400070012")
  eq(uefi.relay.remote_id, "tor7.example")
  eq(chain:dhcp(uefi).filename, "undionly.kpxe", "the default rule, relayed or not")
end)

-- DHCPv6 (boot-only beside the site's DHCPv6 server), on Solicits recorded from real firmware.
local server6 = { server_address = "fd77::2" }

test("every request says its family: DHCPv4, and TFTP/HTTP by the client's address", function()
  eq(fixture(F .. "pxe-bios-discover.json", server).family, "ipv4")
  eq(request { kind = "tftp", path = "x", client_address = "fd77::120" }.family, "ipv6")
  eq(request { kind = "http", path = "/x", client_address = "::ffff:192.168.77.5" }.family, "ipv4")
end)

test("DHCPv6: iPXE (user class iPXE; DHCPv6 has no option 175) gets bootstrap.ipxe from our IPv6 address", function()
  local req = fixture(F .. "ipxe6-bios-solicit.json", server6)
  eq(req.family, "ipv6")
  local d = chain:dhcp(req)
  eq(d.filename, "bootstrap.ipxe")
  eq(d.next_server, "fd77::2")
  eq(d.note, "user class iPXE")
  local r = chain:reply(req)
  eq(r.message_type, "advertise")
  eq(r.url, "tftp://[fd77::2]/bootstrap.ipxe")
end)

test("DHCPv6: OVMF PXEv6 gets undionly.kpxe as DHCPv4 UEFI does, in a PXEClient boot-only Advertise", function()
  local r = chain:reply(fixture(F .. "ovmf-pxe6-solicit.json", server6))
  eq(r.url, "tftp://[fd77::2]/undionly.kpxe")
  eq(r.vendor_class, "PXEClient")
  eq(r.options[3], nil) -- no IA_NA: the site server gives the address
  eq(r.options[13], nil) -- no status code: EDK2 drops an Advertise with any non-Success one
end)

test("DHCPv6: HTTP boot and plain address Solicits are left alone", function()
  silent(chain:dhcp(fixture(F .. "ovmf-http6-solicit.json", server6)))
  eq(chain:reply(fixture(F .. "ovmf-ip6dxe-solicit.json", server6)).silent, "not_netboot")
end)
