local F = "../fixtures/requests/"
local chain = policy_chain { { file = "ipv6-params.lua", config = { params = { "console=ttyS0" } } } }

test("an OVMF PXEv6 Solicit gets its URL and option 60 in the Advertise", function()
  local r = chain:reply(fixture(F .. "ovmf-pxe6-solicit.json"))
  eq(r.url, "tftp://[fd77::2]/ipxe.efi")
  eq(r.options[60], "\0\0" .. "\0\13console=ttyS0")
end)

test("DHCPv4 passes to the next policy", function()
  silent(chain:dhcp(fixture(F .. "ovmf-pxe-discover.json")))
end)
