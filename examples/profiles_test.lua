-- profiles: groups select machines by labels, the most specific wins, profiles say what boots.
local F = "../fixtures/requests/"
local DATA = { data = { groups = "data/groups.yaml", profiles = { file = "data/profiles.yaml", key = "id" } } }
local chain = policy_chain({ { file = "profiles.lua" } }, DATA)
local BIOS = F .. "qemu-ipxe-bios-discover.json"
local EFI = F .. "ovmf-ipxe-efi-discover.json"

test("firmware without iPXE is sent to iPXE first", function()
  eq(chain:dhcp(fixture(F .. "ovmf-pxe-discover.json")).filename, "ipxe.efi")
end)

test("a machine no group names gets the default group's profile", function()
  local d = chain:dhcp(fixture(BIOS, { mac = "52:54:00:99:99:99" }))
  eq(d.note, "group default, profile discovery")
  contains(d.ipxe_script, "kernel http://192.168.77.2:8080/discovery/vmlinuz")
  contains(d.ipxe_script, "bootpolicy.mac=52:54:00:99:99:99")
end)

test("a MAC selector, written with dashes in the file, picks its machine", function()
  local d = chain:dhcp(fixture(BIOS, { mac = "52:54:00:00:00:02" }))
  eq(d.note, "group db-01, profile debian-installer")
  contains(d.ipxe_script, "url=http://192.168.77.2:8080/preseed/db.cfg")
  contains(d.ipxe_script, "hostname=database")
end)

test("more selectors win: the same MAC on UEFI gets the more specific group", function()
  local d = chain:dhcp(fixture(EFI, { mac = "52:54:00:00:00:02" }))
  eq(d.note, "group db-01-efi, profile flatcar")
  contains(d.ipxe_script, "flatcar.config.url=http://192.168.77.2:8080/ignition?mac=52:54:00:00:00:02")
end)

test("a subnet selector matches the relay's giaddr", function()
  local relayed = fixture(EFI, { mac = "52:54:00:07:00:01", relay = { giaddr = "10.7.3.1", circuit_id = "rack7" } })
  eq(chain:dhcp(relayed).note, "group rack7-efi, profile debian-installer")
  local elsewhere = fixture(EFI, { mac = "52:54:00:07:00:01", relay = { giaddr = "10.8.3.1" } })
  eq(chain:dhcp(elsewhere).note, "group default, profile discovery")
end)

test("URLs follow the port the server really serves on", function()
  local other = policy_chain({ { file = "profiles.lua" } },
    { data = DATA.data, server = { http_port = 18080 } })
  contains(other:dhcp(fixture(BIOS)).ipxe_script, "http://192.168.77.2:18080/discovery/vmlinuz")
end)
