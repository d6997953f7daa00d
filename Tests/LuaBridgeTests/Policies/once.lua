-- Netboot once, then local disk.
return {
  dhcp = function(req)
    local s = state.get(req.mac)
    if s and s.installed then return { ignore = true, note = "installed" } end
    return { filename = "install.ipxe" }
  end,
  http = function(req)
    if req.path == "/done" then
      state.set(req.mac, { installed = true, at = "done", n = 1 }, config.ttl)
      return { content = "ok", content_type = "text/plain" }
    end
    if req.path == "/reset" then
      state.clear(req.mac)
      return { content = "reset" }
    end
  end,
}
