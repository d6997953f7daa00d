-- inventory: known MACs boot their row of data/machines.csv, unknown machines discovery.
local F = "../fixtures/requests/"
local chain = policy_chain({ { file = "inventory.lua" } },
  { data = { machines = { file = "data/machines.csv", key = "mac", key_format = "mac" } } })

test("UEFI firmware is sent to ipxe.efi first", function()
  eq(chain:dhcp(fixture(F .. "ovmf-pxe-discover.json")).filename, "ipxe.efi")
end)

test("a known machine boots its row, server paths on this server's HTTP port", function()
  local d = chain:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json", { mac = "52:54:00:00:00:02" }))
  eq(d.filename, "machine.ipxe")
  contains(d.ipxe_script, "db-01")
  contains(d.ipxe_script, "kernel http://192.168.77.2:8080/debian/vmlinuz")
  contains(d.ipxe_script, "url=http://192.168.77.2:8080/preseed/db.cfg")
  contains(d.note, "profile db-01")
end)

test("a MAC written with dashes or dots in the file is found by req.mac", function()
  contains(chain:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json", { mac = "52:54:00:00:00:01" })).note, "web-01")
  local d = chain:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json", { mac = "52:54:00:00:00:03" }))
  contains(d.note, "build-01")
  contains(d.ipxe_script, "kernel http://mirror.example/debian/vmlinuz")
end)

test("the HTTP port in URLs is the one the server serves on", function()
  local other = policy_chain({ { file = "inventory.lua" } },
    { data = { machines = { file = "data/machines.csv", key = "mac", key_format = "mac" } },
      server = { http_port = 18080 } })
  local d = other:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json", { mac = "52:54:00:00:00:02" }))
  contains(d.ipxe_script, "http://192.168.77.2:18080/debian/vmlinuz")
end)

test("an unknown machine boots discovery", function()
  local d = chain:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json"))
  contains(d.ipxe_script, "discovery=1")
  contains(d.note, "unknown machine")
end)

