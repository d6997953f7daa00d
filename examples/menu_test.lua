-- menu: an iPXE menu generated from a table.
local F = "../fixtures/requests/"
local chain = policy_chain { { file = "menu.lua", config = {
  title = "Lab",
  entries = {
    { key = "debian", label = "Install Debian", kernel = "http://10.0.0.1/vmlinuz", initrd = "http://10.0.0.1/initrd" },
    { key = "disk", label = "Local disk", exit = true },
  },
  default = "disk", timeout = 5000 } } }

test("iPXE gets the menu with every entry and the default", function()
  local d = chain:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json"))
  eq(d.filename, "menu.ipxe")
  local s = d.ipxe_script
  contains(s, "menu Lab")
  contains(s, "item debian Install Debian")
  contains(s, "choose --default disk --timeout 5000 target")
  contains(s, "goto ${target}")
  contains(s, ":debian\nkernel http://10.0.0.1/vmlinuz")
end)

test("firmware without iPXE is sent to iPXE first", function()
  eq(chain:dhcp(fixture(F .. "pxe-bios-discover.json")).filename, "undionly.kpxe")
end)
