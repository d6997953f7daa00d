-- arch-aware: every firmware gets a binary it can run, iPXE gets a per-machine script.
local F = "../fixtures/requests/"
local server = { server_address = "192.168.77.2" }
local chain = policy_chain { { file = "arch-aware.lua", config = {
  script = { echo = { "REACHED ${mac}" }, finally = "shell" } } } }

test("PXE BIOS gets undionly.kpxe by TFTP", function()
  local d = chain:dhcp(fixture(F .. "pxe-bios-discover.json", server))
  eq(d.filename, "undionly.kpxe")
  eq(d.next_server, "192.168.77.2")
end)

test("OVMF UEFI PXE gets ipxe.efi, on 67 and on 4011", function()
  eq(chain:dhcp(fixture(F .. "ovmf-pxe-discover.json", server)).filename, "ipxe.efi")
  eq(chain:dhcp(fixture(F .. "ovmf-pxe-request-4011.json", server)).filename, "ipxe.efi")
end)

test("snponly.efi instead, when configured", function()
  local c = policy_chain { { file = "arch-aware.lua", config = { efi_x64 = "snponly.efi" } } }
  eq(c:dhcp(fixture(F .. "ovmf-pxe-discover.json", server)).filename, "snponly.efi")
end)

test("UEFI HTTP boot gets a URL to the EFI binary", function()
  local d = chain:dhcp(fixture(F .. "ovmf-httpboot-discover.json", server))
  eq(d.filename, "http://192.168.77.2:8080/ipxe.efi")
end)

test("with config.https, HTTP boot firmware gets https:// and iPXE keeps http://", function()
  local c = policy_chain({ { file = "arch-aware.lua", config = { https = true } } }, { server = { https_port = 8443 } })
  local d = c:dhcp(fixture(F .. "ovmf-httpboot-discover.json", server))
  eq(d.filename, "https://192.168.77.2:8443/ipxe.efi")
  eq(d.note, "UEFI HTTPS boot")
  local i = c:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json", server))
  eq(i.filename:sub(1, 32), "http://192.168.77.2:8080/boot.ip")
  -- Without an HTTPS listener it says so and falls back to http://.
  local plain = policy_chain { { file = "arch-aware.lua", config = { https = true } } }
  eq(plain:dhcp(fixture(F .. "ovmf-httpboot-discover.json", server)).filename, "http://192.168.77.2:8080/ipxe.efi")
end)

test("ARM64 UEFI gets its own binary", function()
  local d = chain:dhcp(fixture(F .. "ovmf-pxe-discover.json", { arch = "efi-arm64", arch_code = 11, server_address = "192.168.77.2" }))
  eq(d.filename, "ipxe-arm64.efi")
end)

test("iPXE is sent to its per-machine script over HTTP", function()
  local d = chain:dhcp(fixture(F .. "qemu-ipxe-bios-discover.json", server))
  eq(d.filename, "http://192.168.77.2:8080/boot.ipxe?mac=52-54-00-77-00-01&arch=bios&token="
    .. ipxe.script_token("52:54:00:77:00:01"))
end)

test("the script names the machine and runs the configured lines", function()
  local d = chain:http(request { mac = "52:54:00:77:00:01", path = "/boot.ipxe", query = { arch = "bios" } })
  contains(d.ipxe_script, "#!ipxe\n")
  contains(d.ipxe_script, "52:54:00:77:00:01")
  contains(d.ipxe_script, "echo REACHED ${mac}")
  contains(d.ipxe_script, "\nshell")
end)

test("an architecture it has no binary for passes to the next policy", function()
  silent(chain:dhcp(fixture(F .. "ovmf-pxe-discover.json", { arch = "efi-riscv64", arch_code = 27 })))
end)

test("other HTTP paths are left to the static root", function()
  silent(chain:http(request { mac = "52:54:00:77:00:01", path = "/vmlinuz" }))
end)

test("iPXE running on UEFI (recorded) gets its script with arch efi-x64", function()
  local d = chain:dhcp(fixture(F .. "ovmf-ipxe-efi-discover.json", server))
  eq(d.filename, "http://192.168.77.2:8080/boot.ipxe?mac=52-54-00-77-00-02&arch=efi-x64&token="
    .. ipxe.script_token("52-54-00-77-00-02"))
end)

test("the UEFI HTTP boot REQUEST gets the same URL as its DISCOVER", function()
  eq(chain:dhcp(fixture(F .. "ovmf-httpboot-request.json", server)).filename, "http://192.168.77.2:8080/ipxe.efi")
end)

-- The test chain runs behind the same pipeline as `serve`: a client's HTTP request is told what
-- its DHCP request said, so a script URL without &arch= still names the architecture.
test("an HTTP request without arch= learns it from the same client's DHCP request", function()
  chain:dhcp(fixture(F .. "ovmf-ipxe-efi-discover.json", server))
  local d = chain:http(request { mac = "52:54:00:77:00:02", path = "/boot.ipxe" })
  contains(d.ipxe_script, "52:54:00:77:00:02${bpq20:string}(efi-x64)")
end)

test("the script token is per machine, the same for any MAC spelling, and unguessable", function()
  local t = ipxe.script_token("52:54:00:77:00:01")
  eq(#t, 32)
  eq(t:find("^%x+$") ~= nil, true)
  eq(ipxe.script_token("52-54-00-77-00-01"), t)
  eq(ipxe.script_token("525400770001"), t)
  eq(ipxe.script_token("52:54:00:77:00:02") == t, false)
  -- Under `bootpolicy test` the key is a fixed, known one, so this value is pinned: a change
  -- to how tokens are made shows up here (a server signs with its own secret key). The value
  -- is HMAC-SHA256(key, "bootpolicy script v1\0" .. "52:54:00:77:00:01"), first 16 bytes, hex.
  eq(t, "0063c5681cf9d57765c681672823cb97")
end)

-- DHCPv6, on Solicits recorded from real firmware (fixtures/lab/v6/record.sh).
local server6 = { server_address = "fd77::2" }

test("DHCPv6: OVMF PXEv6 gets ipxe.efi by TFTP from our IPv6 address", function()
  local req = fixture(F .. "ovmf-pxe6-solicit.json", server6)
  eq(req.arch, "efi-x64")
  eq(req.mac, "52:54:00:79:00:02") -- from its DUID-LLT
  local d = chain:dhcp(req)
  eq(d.filename, "ipxe.efi")
  eq(chain:reply(req).url, "tftp://[fd77::2]/ipxe.efi")
end)

test("DHCPv6: UEFI HTTPv6 boot gets a bracketed http:// URL and the HTTPClient class", function()
  local r = chain:reply(fixture(F .. "ovmf-http6-solicit.json", server6))
  eq(r.url, "http://[fd77::2]:8080/ipxe.efi")
  eq(r.vendor_class, "HTTPClient")
end)

test("DHCPv6: iPXE gets its script URL on our IPv6 address, MAC from its link-local address", function()
  local req = fixture(F .. "ipxe6-bios-solicit.json", server6)
  eq(req.mac, "52:54:00:79:00:01") -- DUID-UUID of zeros: the EUI-64 of fe80::5054:ff:fe79:1
  local d = chain:dhcp(req)
  assert(d.filename:find("^http://%[fd77::2%]:8080/boot%.ipxe%?mac=52%-54%-00%-79%-00%-01&arch=bios"), d.filename)
end)

test("DHCPv6: a configured IPv4 server_address does not leak into an IPv6 URL", function()
  local c = policy_chain({ { file = "arch-aware.lua" } }, { server = { address = "192.168.77.2" } })
  eq(c:dhcp(fixture(F .. "ovmf-http6-solicit.json", server6)).filename, "http://[fd77::2]:8080/ipxe.efi")
  eq(c:dhcp(fixture(F .. "ovmf-httpboot-discover.json", server)).filename, "http://192.168.77.2:8080/ipxe.efi")
end)
