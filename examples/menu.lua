-- menu.lua: an iPXE menu generated from a table. iPXE clients get the menu as their script;
-- everything else is sent to iPXE first.
--
-- config:
--   title    menu title                                   (default "bootpolicy")
--   timeout  ms before the default entry boots            (default 10000)
--   entries  list of { key=, label=, chain= } or { key=, label=, kernel=, initrd=, cmdline= }
--   default  key of the default entry                     (default: the first)

local first_stage = require("first_stage")
local entries = config.entries or {
  { key = "disk", label = "Boot from local disk", exit = true },
  { key = "shell", label = "iPXE shell", shell = true },
}

local function build()
  local s = ipxe.script()
  s:menu(config.title or "bootpolicy")
  for _, e in ipairs(entries) do s:item(e.key, e.label) end
  s:choose("target", { default = config.default or entries[1].key, timeout = config.timeout or 10000 })
  s:go(ipxe.var("target"))
  for _, e in ipairs(entries) do
    s:label(e.key)
    if e.chain then s:chain(e.chain)
    elseif e.kernel then
      s:kernel(e.kernel, e.cmdline)
      if e.initrd then s:initrd(e.initrd) end
      s:boot()
    elseif e.shell then s:line("shell")
    else s:exit() end
  end
  return s
end

local menu = build()

return {
  name = "menu",

  dhcp = function(req)
    if not req.ipxe then return first_stage(req) end
    return { filename = "menu.ipxe", next_server = req.server_address, ipxe_script = menu }
  end,
}
