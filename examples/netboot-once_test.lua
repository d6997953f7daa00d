-- netboot-once: the installer once per machine, then the local disk.
local F = "../fixtures/requests/"
local chain = policy_chain { { file = "netboot-once.lua", config = {
  installer = { kernel = "http://10.0.0.1/vmlinuz", initrd = "http://10.0.0.1/initrd", cmdline = "auto=true" } } } }

test("first boot installs, the second goes to disk", function()
  local req = fixture(F .. "qemu-ipxe-bios-discover.json")
  local first = chain:dhcp(req)
  contains(first.ipxe_script, "kernel http://10.0.0.1/vmlinuz auto=true")
  contains(first.note, "install")
  local second = chain:dhcp(req)
  contains(second.ipxe_script, "exit")
  contains(second.note, "local disk")
end)

test("machines are remembered one by one", function()
  local a = fixture(F .. "qemu-ipxe-bios-discover.json", { mac = "52:54:00:00:01:01" })
  local b = fixture(F .. "qemu-ipxe-bios-discover.json", { mac = "52:54:00:00:01:02" })
  contains(chain:dhcp(a).note, "install")
  contains(chain:dhcp(b).note, "install")
  contains(chain:dhcp(a).note, "local disk")
end)

test("state can be preloaded, and forgotten when its time runs out", function()
  local c = policy_chain { { file = "netboot-once.lua", config = {
    installer = { kernel = "http://10.0.0.1/vmlinuz" }, remember = 3600 } } }
  local req = fixture(F .. "qemu-ipxe-bios-discover.json", { mac = "52:54:00:00:02:01" })
  c:set_state(req.mac, { installed = true }, 60)
  contains(c:dhcp(req).note, "local disk", "preloaded state is what the policy sees")
  c:advance(61)
  is_nil(c:state(req.mac), "expired after its ttl")
  contains(c:dhcp(req).note, "install", "so the machine installs again")
  eq(c:state(req.mac).installed, true)
  c:advance(3599)
  contains(c:dhcp(req).note, "local disk", "the policy's own 3600 s have not run out")
  c:advance(2)
  contains(c:dhcp(req).note, "install")
end)
