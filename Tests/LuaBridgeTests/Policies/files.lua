return {
  tftp = function(req)
    if req.path == "generated.txt" then return { content = "hello " .. mac.hexhyp(req.mac) } end
    if req.path == "secret" then return { refuse = "not for you" } end
    if req.path == "old.kpxe" then return { path = "undionly.kpxe" } end
  end,
  http = function(req)
    if req.path == "/boot.ipxe" then
      local s = ipxe.script()
        :echo("Booting " .. mac.colon(req.mac))
        :kernel("http://10.0.0.1/vmlinuz", "console=ttyS0", "hostname=" .. (req.query.host or "none"))
        :initrd("http://10.0.0.1/initrd.img")
        :boot()
      return { ipxe_script = s, content_type = "text/plain", status = 200 }
    end
    if req.path == "/opts" then
      local o = req.options
      return { content = o[60] or "none", note = tostring(#req.user_class) }
    end
  end,
}
