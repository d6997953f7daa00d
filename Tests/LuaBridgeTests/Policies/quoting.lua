return {
  http = function(req)
    local s = ipxe.script()
    for _, k in ipairs({ "a", "b", "c", "d", "e", "f" }) do
      if req.query[k] then s:line("echo", req.query[k]) end
    end
    s:set("menu-title", "My  boot menu")
    s:chain("http://10.0.0.1/boot?mac=" .. ipxe.var("net0/mac") .. "&x=a b")
    return { ipxe_script = s }
  end,
}
