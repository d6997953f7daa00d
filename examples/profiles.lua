-- profiles.lua: machines -> groups -> profiles, as matchbox does it, over two data files:
--
--   data:
--     groups: data/groups.yaml                      # selectors, profile, metadata
--     profiles: { file: data/profiles.yaml, key: id }
--
-- A machine not yet running iPXE is sent to it (first_stage); iPXE then gets a script made
-- from the profile of the most specific group that selects it. Edit either file and the
-- server picks it up within a second; a broken edit is refused with its line and column.
--
-- config:
--   script_name   the name the generated script is served as (default "profile.ipxe")

local first_stage = require("first_stage")

-- Run once per load (and so again whenever a data file changes): the groups, most specific
-- first, each selector checked now so that a typo fails the load, not a boot.
local LABELS = { mac = true, uuid = true, hostname = true, arch = true, firmware = true, subnet = true }
local groups = {}
for i, g in ipairs(data.groups or {}) do
  local sel, n = {}, 0
  for k, v in pairs(g.selector or {}) do
    if not LABELS[k] then error(("groups.yaml: group %s: unknown selector label '%s'"):format(g.id, k)) end
    if k == "mac" then v = mac.normalize(tostring(v)) end
    if k == "subnet" then net.in_cidr(v, "0.0.0.0") end -- a bad CIDR raises here
    sel[k], n = tostring(v), n + 1
  end
  if not (data.profiles or {})[g.profile] then
    error(("groups.yaml: group %s names profile '%s', which profiles.yaml does not have"):format(g.id, tostring(g.profile)))
  end
  groups[#groups + 1] = { id = g.id, profile = g.profile, metadata = g.metadata or {}, selector = sel, n = n, order = i }
end
table.sort(groups, function(a, b)
  if a.n ~= b.n then return a.n > b.n end
  return a.order < b.order
end)

local function matches(sel, req)
  for k, want in pairs(sel) do
    if k == "subnet" then
      local addr = req.relay and req.relay.giaddr or req.client_address
      if not net.in_cidr(want, addr) then return false end
    elseif tostring(req[k]) ~= want then
      return false
    end
  end
  return true
end

local function group_for(req)
  for _, g in ipairs(groups) do
    if matches(g.selector, req) then return g end
  end
end

local function here(req, path)
  if type(path) == "string" and path:sub(1, 1) == "/" then return (server.http_url(req) or "") .. path end
  return path
end

local function fill(text, g, req)
  return (text:gsub("{{(%w+)}}", function(name)
    if name == "base" then return server.http_url(req) or "" end
    local v = g.metadata[name]
    if v == nil then v = req[name] end
    if v == nil then error(("profile args: {{%s}} is neither metadata of group %s nor a request field"):format(name, g.id)) end
    return tostring(v)
  end))
end

local function script(g, req)
  local boot = data.profiles[g.profile].boot
  local args = {}
  for i, a in ipairs(boot.args or {}) do args[i] = fill(a, g, req) end
  local s = ipxe.script()
  s:echo(("bootpolicy: %s is group %s, profile %s"):format(req.mac, g.id, g.profile))
  s:kernel(here(req, boot.kernel), #args > 0 and table.concat(args, " ") or nil)
  for _, initrd in ipairs(boot.initrd or {}) do s:initrd(here(req, initrd)) end
  s:boot()
  return s
end

return {
  name = "profiles",

  dhcp = function(req)
    if not req.ipxe then return first_stage(req) end
    local g = group_for(req)
    if not g then return nil end
    return {
      filename = config.script_name or "profile.ipxe",
      next_server = server.tftp_address(req) or req.server_address,
      ipxe_script = script(g, req),
      note = "group " .. g.id .. ", profile " .. g.profile,
    }
  end,
}
