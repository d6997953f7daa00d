-- razor: the seed's chain to razor-server, with bootstrap.ipxe generated per client.
local F = "../fixtures/requests/"
local server = { server_address = "192.168.77.2" }
local chain = policy_chain { { file = "razor.lua", config = { razor_url = "http://razor.lab:8150", nic_max = 2 } } }

test("firmware without iPXE gets undionly.kpxe", function()
  eq(chain:dhcp(fixture(F .. "pxe-bios-discover.json", server)).filename, "undionly.kpxe")
end)

test("iPXE gets bootstrap.ipxe that chains to razor's microkernel bootstrap", function()
  local d = chain:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json", server))
  eq(d.filename, "bootstrap.ipxe")
  eq(d.next_server, "192.168.77.2")
  contains(d.ipxe_script, "chain http://razor.lab:8150/api/microkernel/bootstrap?nic_max=2")
end)
