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
