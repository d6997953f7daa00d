-- Policies are found relative to this file.
local chain = policy_chain {
  { file = "../pass.lua" },
  { file = "../default.lua", config = { loader = "undionly.kpxe", script = "bootstrap.ipxe" } },
}

test("plain PXE gets undionly.kpxe", function()
  local d = chain:dhcp(fixture("fixtures/pxe-bios.json"))
  eq(d.filename, "undionly.kpxe")
  eq(d.policy, "default")
end)

test("iPXE gets the script", function()
  local d = chain:dhcp(fixture("fixtures/pxe-bios.json", { ipxe = true }))
  eq(d, { filename = "bootstrap.ipxe", note = "ipxe", policy = "default" })
end)

test("tftp is not decided by these policies", function()
  silent(chain:tftp(request { mac = "52-54-00-12-34-56", path = "undionly.kpxe" }))
end)

test("state carries across hooks", function()
  local once = policy_chain { { file = "../once.lua" } }
  local r = request { mac = "52:54:00:00:00:07" }
  eq(once:dhcp(r).filename, "install.ipxe")
  eq(once:http(request { mac = "52:54:00:00:00:07", path = "/done" }).content, "ok")
  is_true(once:dhcp(r).ignore)
  contains(once:dhcp(r).note, "install")
end)

test("ipxe builder works in tests too", function()
  local s = ipxe.script():echo("hi there")
  contains(tostring(s), "echo hi there")
  is_nil(nil)
end)
