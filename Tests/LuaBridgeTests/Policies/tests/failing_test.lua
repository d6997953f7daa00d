local chain = policy_chain { { file = "../default.lua" } }

test("wrong filename", function()
  local d = chain:dhcp(request { mac = "52:54:00:12:34:56", arch = "bios", firmware = "bios" })
  eq(d.filename, "ipxe.efi")
end)

test("expects silence", function()
  silent(chain:dhcp(request { mac = "52:54:00:12:34:56" }))
end)

test("policy error surfaces", function()
  local bad = policy_chain { { file = "../runtime_error.lua" } }
  bad:dhcp(request { mac = "52:54:00:12:34:56" })
end)

test("bad request field", function()
  request { mac = "52:54:00:12:34:56", firmwear = "bios" }
end)

test("passes", function() eq(1, 1) end)
