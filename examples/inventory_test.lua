-- inventory: known MACs boot their profile, unknown machines the discovery image.
local F = "../fixtures/requests/"
local chain = policy_chain { { file = "inventory.lua" } }

test("UEFI firmware is sent to ipxe.efi first", function()
  eq(chain:dhcp(fixture(F .. "ovmf-pxe-discover.json")).filename, "ipxe.efi")
end)

test("a known machine boots its profile", function()
  local d = chain:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json", { mac = "52:54:00:00:00:02" }))
  eq(d.filename, "machine.ipxe")
  contains(d.ipxe_script, "db-01")
  contains(d.ipxe_script, "url=http://192.168.77.2:8080/preseed/db.cfg")
  contains(d.note, "profile db-01")
end)

test("an unknown machine boots discovery", function()
  local d = chain:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json"))
  contains(d.ipxe_script, "discovery=1")
  contains(d.note, "unknown machine")
end)
