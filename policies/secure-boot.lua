-- secure-boot.lua: UEFI machines with Secure Boot on boot the distribution's signed chain,
-- decided per machine: shim (signed by Microsoft) -> GRUB (signed by the distribution) -> the
-- grub.cfg this policy generates for that machine -> a signed kernel. Firmware that is not
-- x64 UEFI passes to the next policy in the chain (list default or arch-aware after this one).
--
--   UEFI x64 PXE (arch 7, 9)    -> shimx64.efi by TFTP; shim loads grubx64.efi beside it
--   UEFI x64 HTTP boot          -> http://SERVER:PORT/shimx64.efi, GRUB then fetches by HTTP
--   GRUB asking for its config  -> grub.cfg (or grub.cfg-01-<mac>, grub.cfg-<mac>,
--                                  grub.cfg-<HEXIP>), generated for the machine asking: it
--                                  boots config.kernel with config.cmdline and config.initrd
--
-- Debian's files: shimx64.efi from shim-signed (/usr/lib/shim/shimx64.efi.signed), grubx64.efi
-- from grub-efi-amd64-signed (/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed, the
-- netboot image, which reads grub/grub.cfg from the server it came from), and a kernel from
-- linux-image-amd64 (/boot/vmlinuz-*, signed) in the TFTP/HTTP root.
--
-- Proven in the lab (scripts/lab.sh --scenario uefi-secureboot, docs/secure-boot.md), with two
-- limits of Debian 12's GRUB: it takes its TFTP server from the DHCP ACK only, so beside a
-- site DHCP server (ProxyDHCP) it asks the site for grub.cfg unless the site's next-server is
-- this server (or bootpolicy is the DHCP server); and after UEFI HTTP boot it finds no network.
--
-- config (all optional):
--   shim        the first file (default "shimx64.efi")
--   kernel      the kernel path as GRUB fetches it, relative to its root (default "linux")
--   initrd      the initrd path (default "initrd.gz"; false: none)
--   cmdline     kernel arguments (default ""); bootpolicy.mac=<MAC> is appended so the
--               installed system knows which machine it was decided for
--   title       the menu entry's title (default "bootpolicy: <mac>")
--   timeout     seconds GRUB shows the menu (default 0)
--   http_base   base URL for HTTP boot instead of server.http_url(req)
--   https       true: HTTP boot firmware gets an https:// URL (server.https_url, http.tls);
--               the firmware must trust the server's CA (OVMF: etc/edk2/https/cacerts)

local shim = config.shim or "shimx64.efi"

local function base_url(req)
  if config.http_base then return config.http_base end
  if config.https then
    local u = server.https_url(req)
    if u then return u end
    log.warn("secure-boot: config.https is set but the server has no HTTPS listener (http.tls); HTTP boot gets http://")
  end
  return server.http_url(req) or ("http://" .. (req.server_address or "0.0.0.0") .. ":8080")
end

local x64 = { ["efi-x64"] = true, ["efi-bc"] = true }
local x64_http = { ["efi-x64-http"] = true, ["efi-bc-http"] = true }

-- The grub.cfg for one machine.
local function config_for(mac_address)
  local c = grub.config()
  c:comment("for " .. mac_address .. " by secure-boot.lua")
  c:timeout(config.timeout or 0)
  c:menuentry(config.title or ("bootpolicy: " .. mac_address), { id = "bootpolicy" }, function(e)
    e:echo("bootpolicy: booting " .. mac_address)
    local args = {}
    for word in (config.cmdline or ""):gmatch("%S+") do args[#args + 1] = word end
    args[#args + 1] = "bootpolicy.mac=" .. mac_address
    e:linux(config.kernel or "linux", table.unpack(args))
    if config.initrd ~= false then e:initrd(config.initrd or "initrd.gz") end
  end)
  return c:render()
end

-- A config request is answered only for the machine asking: a name that carries another
-- machine's MAC (or address) is refused, so nobody reads another machine's kernel arguments.
local function serve_config(req)
  local asked = grub.config_request(req.path)
  if not asked then return nil end
  if not req.mac or req.mac == "" then
    return { refuse = "no machine known for " .. tostring(req.client_address), note = "grub.cfg for an unknown machine" }
  end
  if asked.mac and asked.mac ~= mac.normalize(req.mac) then
    return { refuse = "not this machine's config", note = "grub.cfg for " .. asked.mac .. " asked by " .. req.mac }
  end
  if asked.ip and req.client_address and asked.ip ~= req.client_address then
    return { refuse = "not this machine's config", note = "grub.cfg for " .. asked.ip .. " asked by " .. req.client_address }
  end
  return { content = config_for(mac.normalize(req.mac)), content_type = "text/plain", note = "grub.cfg for " .. req.mac }
end

return {
  name = "secure-boot",

  dhcp = function(req)
    if req.ipxe then return nil end
    if req.firmware == "http-boot" and x64_http[req.arch] then
      return { filename = base_url(req) .. "/" .. shim, note = "Secure Boot chain by HTTP" }
    end
    if x64[req.arch] then
      local next_server = server.tftp_address(req) or req.server_address
      return { filename = shim, next_server = next_server, note = "Secure Boot chain: shim" }
    end
    return nil
  end,

  tftp = serve_config,
  http = serve_config,
}
