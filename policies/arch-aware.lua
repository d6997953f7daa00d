-- arch-aware.lua: the boot rule dnsmasq cannot express. Each firmware gets a binary it can
-- run, and once iPXE runs it fetches a script generated for that very machine over HTTP.
--
--   BIOS (arch 0)                -> undionly.kpxe by TFTP
--   UEFI x64 (arch 7, 9)         -> ipxe.efi by TFTP (or snponly.efi: config.efi_x64)
--   UEFI IA32 (arch 6)           -> config.efi_ia32
--   UEFI ARM64 (arch 11)         -> config.efi_arm64
--   UEFI HTTP boot (HTTPClient)  -> http://SERVER:PORT/<efi binary for that arch>
--                                   (https://SERVER:TLSPORT/... with config.https)
--   iPXE (option 175 or user class iPXE) -> http://SERVER:PORT/boot.ipxe?mac=..&arch=..&token=..
--   http hook: /boot.ipxe        -> a script made for that MAC (see config.script)
--
-- config (all optional):
--   bios, efi_x64, efi_ia32, efi_arm64   boot file names
--   http_base                            full base URL instead of server.http_url(req), the
--                                        server's own http://ADDRESS:PORT
--   http_port                            only when the server's HTTP is off: the port to name
--   https                                true: UEFI HTTP boot firmware gets its boot file by
--                                        https:// (server.https_url, needs http.tls); the
--                                        firmware must trust the server's CA (OVMF:
--                                        etc/edk2/https/cacerts). iPXE's script URL stays
--                                        http://: a stock iPXE trusts no private CA.
--   next_server                          TFTP server (default: the address the request reached)
--   script = {                           what /boot.ipxe does for a machine
--     echo = { "lines", "to", "print" },  -- ${mac} etc. are expanded by iPXE
--     chain = "http://...",               -- chain on to a provisioning server, or
--     kernel = "http://...", initrd = "http://...", cmdline = "...",
--     finally = "exit" | "shell" | "poweroff" | "reboot"   (default "exit": boot from disk)
--   }

local files = {
  bios = config.bios or "undionly.kpxe",
  ["efi-x64"] = config.efi_x64 or "ipxe.efi",
  ["efi-bc"] = config.efi_x64 or "ipxe.efi",
  ["efi-ia32"] = config.efi_ia32 or "ipxe-ia32.efi",
  ["efi-arm64"] = config.efi_arm64 or "ipxe-arm64.efi",
}

-- HTTP boot arch names map onto the EFI binary of the same CPU.
local http_arch = {
  ["efi-x64-http"] = "efi-x64", ["efi-bc-http"] = "efi-x64", ["efi-ia32-http"] = "efi-ia32",
  ["efi-arm64-http"] = "efi-arm64",
}

-- The server's own HTTP address and port (server.http_url: the port it really serves on, the
-- address the request reached or server_address), unless config names another.
local function base_url(req)
  if config.http_base then return config.http_base end
  return server.http_url(req)
    or "http://" .. (req.server_address or "0.0.0.0") .. ":" .. tostring(config.http_port or 8080)
end

-- The base for HTTP boot firmware: https:// when config.https and the server serves TLS.
local function firmware_base_url(req)
  if config.https then
    local u = server.https_url(req)
    if u then return u end
    log.warn("arch-aware: config.https is set but the server has no HTTPS listener (http.tls); HTTP boot gets http://")
  end
  return base_url(req)
end

local function script_for(req)
  local s = ipxe.script()
  local sc = config.script or {}
  -- One argument with spaces: the builder quotes it for iPXE (the lab checks it prints whole).
  s:line("echo", "bootpolicy:", ("script for %s (%s)"):format(req.mac, req.query.arch or req.arch or "unknown arch"))
  -- Operator-written lines: ${settings} in them are meant for iPXE to expand, so they go
  -- out as written (ipxe.quote would refuse them).
  for _, line in ipairs(sc.echo or {}) do s:raw("echo " .. line) end
  if sc.chain then
    s:chain(sc.chain)
  elseif sc.kernel then
    s:kernel(sc.kernel, sc.cmdline)
    if sc.initrd then s:initrd(sc.initrd) end
    s:boot()
  end
  local finally = sc.finally or "exit"
  if finally == "exit" then s:exit() else s:line(finally) end
  return s
end

return {
  name = "arch-aware",

  dhcp = function(req)
    local next_server = config.next_server or server.tftp_address(req) or req.server_address
    if req.ipxe then
      -- The token makes the server believe this mac= (http.script_access: token): nobody
      -- else on the network can fetch this machine's script by naming its MAC.
      local url = base_url(req) .. "/boot.ipxe?mac=" .. mac.hexhyp(req.mac) .. "&arch=" .. (req.arch or "unknown")
        .. "&token=" .. ipxe.script_token(req.mac)
      return { filename = url, next_server = next_server, note = "iPXE: script over HTTP" }
    end
    if req.firmware == "http-boot" then
      local file = files[http_arch[req.arch] or ""]
      if not file then return nil end
      local url = firmware_base_url(req)
      return { filename = url .. "/" .. file, note = url:find("^https:") and "UEFI HTTPS boot" or "UEFI HTTP boot" }
    end
    local file = files[req.arch or (req.firmware == "bios" and "bios") or ""]
    if not file then
      log.warn("arch-aware: no boot file for arch %s (code %s) from %s", tostring(req.arch), tostring(req.arch_code), req.mac)
      return nil
    end
    return { filename = file, next_server = next_server, note = "arch " .. req.arch }
  end,

  http = function(req)
    if req.path ~= "/boot.ipxe" then return nil end
    return { ipxe_script = script_for(req), note = "generated for " .. req.mac }
  end,
}
