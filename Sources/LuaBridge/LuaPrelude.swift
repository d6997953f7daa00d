/// Lua code run once in every state before the sandbox closes. It receives the internals
/// (`host` trampoline, `read_module`, the real `load`, a count-only `collectgarbage`) and
/// returns the environment factories. Policies never see the internals.
enum LuaPrelude {
    static let source = #"""
local I = ...
local host, read_module, real_load, gc_count, where = I.host, I.read_module, I.load, I.collectgarbage, I.where
-- An error at the policy's own line, however deep in the library (and through tail calls).
local function perr(msg) error(where() .. msg, 0) end
local type, tostring, tonumber, select, error, pairs, ipairs = type, tostring, tonumber, select, error, pairs, ipairs
local setmetatable, getmetatable, rawget, pcall, next = setmetatable, getmetatable, rawget, pcall, next
local math_type, tointeger = math.type, math.tointeger
local sfmt, sbyte, concat = string.format, string.byte, table.concat
-- The library's own matching goes through the same budgeted functions as policies' (the
-- C side replaced them before this runs): a policy handing it a huge string pays for it.
local rfind, rgmatch = string.find, string.gmatch
local OP_LOG, OP_GET, OP_SET, OP_CLEAR, OP_TOKEN = 1, 2, 3, 4, 5
local OP_CHAIN, OP_RUN, OP_FIXTURE, OP_RESULT, OP_REQUEST = 10, 11, 12, 13, 14
local OP_REPLY, OP_TSTATE, OP_ADVANCE = 15, 16, 17

local LIBS = { string = string, table = table, math = math, utf8 = utf8 }
local BASE = { "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
  "rawlen", "rawset", "select", "setmetatable", "getmetatable", "tonumber", "tostring",
  "type", "xpcall", "_VERSION" }
local G = {}
for _, k in ipairs(BASE) do G[k] = _G[k] end
-- No finalizers: a __gc would run outside any hook (at collection or state close).
local real_setmetatable = setmetatable
G.setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: __gc metamethods are not allowed in policies", 2)
  end
  if getmetatable(t) == "read-only data" then error("setmetatable: data is read-only (cannot change a protected metatable)", 2) end
  return real_setmetatable(t, mt)
end

-- data.* tables are empty proxies (see ro_wrap in shim.c): rawset would write into the proxy
-- itself and change what every policy of the state reads.
local real_rawset, real_getmetatable = rawset, getmetatable
G.rawset = function(t, k, v)
  if real_getmetatable(t) == "read-only data" then error("rawset: data is read-only", 2) end
  return real_rawset(t, k, v)
end

local function copy(t) local r = {} for k, v in pairs(t) do r[k] = v end return r end

-- mac ---------------------------------------------------------------------------------
local mac = {}
local function hex12(m)
  if type(m) ~= "string" then return nil end
  local h = m:lower():gsub("[:%-%.]", "")
  if #h ~= 12 or h:find("[^0-9a-f]") then return nil end
  return h
end
local function need_mac(m, fn, level)
  local h = hex12(m)
  if not h then error(sfmt("%s: not a MAC address: %s", fn, tostring(m)), level + 1) end
  return h
end
local function join(h, sep) return (h:gsub("..", "%0" .. sep):sub(1, -1 - #sep)) end
function mac.hexraw(m) return need_mac(m, "mac.hexraw", 2) end
function mac.hexhyp(m) return join(need_mac(m, "mac.hexhyp", 2), "-") end
function mac.colon(m) return join(need_mac(m, "mac.colon", 2), ":") end
function mac.normalize(m) return join(need_mac(m, "mac.normalize", 2), ":") end
function mac.valid(m) return hex12(m) ~= nil end

-- state ---------------------------------------------------------------------------------
local state = {}
function state.get(m) return host(OP_GET, join(need_mac(m, "state.get", 2), ":")) end
function state.set(m, t, ttl)
  local key = join(need_mac(m, "state.set", 2), ":")
  if type(t) ~= "table" then error("state.set: expected a table as second argument, got " .. type(t), 2) end
  if ttl ~= nil and (type(ttl) ~= "number" or ttl <= 0) then
    error("state.set: ttl must be a positive number of seconds", 2)
  end
  return host(OP_SET, key, t, ttl)
end
function state.clear(m) return host(OP_CLEAR, join(need_mac(m, "state.clear", 2), ":")) end

-- ipxe ----------------------------------------------------------------------------------
-- iPXE splits a line on whitespace (no quote characters exist), treats a token starting
-- with '#' as a comment and the tokens '||', '&&', ';' as separators, then expands
-- ${setting} inside each token, rescanning until no ${...} remains. So a literal byte that
-- would split or end the command is written as ${bpqXX:string}, a helper setting holding
-- that byte (set once at the top of the script by render()); an empty argument is
-- ${bpq-empty} (unset, so ""). A literal "${...}" cannot survive expansion: refused.
local ipxe = {}
-- Metatables answer getmetatable() with a tag, so policies cannot reach (and change) the
-- methods other policies in the same state share.
local VAR_TAG, RAW_TAG, SCRIPT_TAG = {}, {}, {}
local VAR = { __name = "ipxe.var", __metatable = VAR_TAG }
local RAW = { __name = "ipxe.text", __metatable = RAW_TAG }
local quote
VAR.__tostring = function(v) return "${" .. v.name .. "}" end
RAW.__tostring = function(v) return v.text end
-- "literal" .. ipxe.var("x") .. "literal": the strings are quoted, the var stays live.
local function cat(a, b) return setmetatable({ text = quote(a, 2) .. quote(b, 2) }, RAW) end
VAR.__concat, RAW.__concat = cat, cat
function ipxe.var(name)
  if type(name) ~= "string" or not name:find("^[%w_%-%./:]+$") then
    error("ipxe.var: invalid setting name " .. tostring(name), 2)
  end
  return setmetatable({ name = name }, VAR)
end
local function esc(c) return sfmt("${bpq%02x:string}", sbyte(c)) end
quote = function(s, level)
  local mt = getmetatable(s)
  if mt == VAR_TAG then return "${" .. s.name .. "}" end
  if mt == RAW_TAG then return s.text end
  local ts = type(s)
  if ts == "number" then s = tostring(tointeger(s) or s)
  elseif ts == "boolean" then s = tostring(s)
  elseif ts ~= "string" then perr("ipxe.quote: expected string, number or ipxe.var(), got " .. ts) end
  if s == "" then return "${bpq-empty}" end
  local dollar = rfind(s, "${", 1, true)
  if dollar and rfind(s, "}", dollar + 2, true) then
    perr(sfmt("ipxe.quote: %q contains '${...}', which iPXE would always expand; use ipxe.var(name) for settings", s))
  end
  if s:find("\0", 1, true) then perr("ipxe.quote: a NUL byte cannot appear in an iPXE argument") end
  local out = s:gsub("%s", esc)
  if out:sub(1, 1) == "#" then out = esc("#") .. out:sub(2) end
  if out == "||" or out == "&&" or out == ";" then out = esc(out:sub(1, 1)) .. out:sub(2) end
  if out:sub(-1) == "\\" then out = out:sub(1, -2) .. esc("\\") end
  return out
end
function ipxe.quote(s) return quote(s, 2) end
-- The token that makes the HTTP server believe `?mac=` for this machine (http.script_access).
function ipxe.script_token(m) return host(OP_TOKEN, join(need_mac(m, "ipxe.script_token", 2), ":")) end

local Script = {}
Script.__index = Script
Script.__name = "ipxe.script"
Script.__metatable = SCRIPT_TAG
function ipxe.script() return setmetatable({ lines = {} }, Script) end
local function cmd_name(c, level)
  if type(c) ~= "string" or not c:find("^[%w_%-]+$") then
    perr("ipxe: invalid command name " .. tostring(c))
  end
  return c
end
-- Appends `command arg...`; a first argument starting with '-' gets "--" before it so
-- iPXE's getopt does not read it as an option.
local function emit(self, level, command, ...)
  local parts = { command }
  local n = select("#", ...)
  for i = 1, n do
    -- nil arguments are left out, so optional parts (a kernel's cmdline) pass as they are.
    local v = (select(i, ...))
    if v ~= nil then
      local q = quote(v, level + 1)
      if #parts == 1 and q:sub(1, 1) == "-" then parts[#parts + 1] = "--" end
      parts[#parts + 1] = q
    end
  end
  self.lines[#self.lines + 1] = concat(parts, " ")
  return self
end
-- Words split on single spaces so the text reads naturally and spacing survives.
local function words(text, level)
  if type(text) ~= "string" then return { text } end
  local t = {}
  for w in rgmatch(text .. " ", "(.-) ") do t[#t + 1] = w end
  return t
end
function Script:line(command, ...) return emit(self, 2, cmd_name(command, 2), ...) end
function Script:raw(text)
  if type(text) ~= "string" then error("ipxe: raw expects a string", 2) end
  self.lines[#self.lines + 1] = text
  return self
end
function Script:comment(text) return self:raw("# " .. tostring(text):gsub("[\r\n]", " ")) end
function Script:set(name, value)
  if type(name) ~= "string" or not name:find("^[%w_%-%./:]+$") then error("ipxe: invalid setting name " .. tostring(name), 2) end
  if getmetatable(value) == VAR_TAG or getmetatable(value) == RAW_TAG or type(value) ~= "string" then return emit(self, 2, "set", name, value) end
  local w = words(value, 2)
  local parts = { "set", name }
  for _, x in ipairs(w) do parts[#parts + 1] = quote(x, 2) end
  self.lines[#self.lines + 1] = concat(parts, " ")
  return self
end
-- A command followed by free text: words keep their spacing, each quoted.
local function emit_text(self, command, text)
  local parts = { command }
  for i, x in ipairs(words(text, 3)) do
    local q = quote(x, 3)
    if i == 1 and q:sub(1, 1) == "-" then parts[#parts + 1] = "--" end
    parts[#parts + 1] = q
  end
  self.lines[#self.lines + 1] = concat(parts, " ")
  return self
end
function Script:echo(text) return emit_text(self, "echo", text == nil and "" or text) end
function Script:kernel(url, ...) return emit(self, 2, "kernel", url, ...) end
function Script:initrd(url, name)
  if name == nil then return emit(self, 2, "initrd", url) end
  local parts = { "initrd", "--name", quote(name, 2) }
  local q = quote(url, 2)
  if q:sub(1, 1) == "-" then parts[#parts + 1] = "--" end
  parts[#parts + 1] = q
  self.lines[#self.lines + 1] = concat(parts, " ")
  return self
end
function Script:chain(url, ...) return emit(self, 2, "chain", url, ...) end
function Script:imgfetch(url, ...) return emit(self, 2, "imgfetch", url, ...) end
function Script:boot(...) return emit(self, 2, "boot", ...) end
function Script:dhcp() return emit(self, 2, "dhcp") end
local function int_arg(v, what)
  local i = tointeger(v)
  if not i or i < 0 then perr(sfmt("ipxe: %s expects a non-negative integer, got %s", what, tostring(v))) end
  return i
end
function Script:exit(code)
  if code == nil then return emit(self, 2, "exit") end
  return emit(self, 2, "exit", int_arg(code, "exit"))
end
function Script:sleep(s) return emit(self, 2, "sleep", int_arg(s, "sleep")) end
function Script:label(name)
  if type(name) ~= "string" or not name:find("^[%w_%-]+$") then error("ipxe: invalid label " .. tostring(name), 2) end
  self.lines[#self.lines + 1] = ":" .. name
  return self
end
function Script:go(label)
  if type(label) ~= "string" or not label:find("^[%w_%-]+$") then
    if getmetatable(label) ~= VAR_TAG then error("ipxe: invalid label " .. tostring(label), 2) end
  end
  return emit(self, 2, "goto", label)
end
function Script:menu(title)
  if title == nil then return emit(self, 2, "menu") end
  return emit_text(self, "menu", title)
end
-- item(label, text, {key=, default=true, gap=true})
function Script:item(label, text, opts)
  local parts = { "item" }
  opts = opts or {}
  if opts.key then parts[#parts + 1] = "--key " .. quote(opts.key, 2) end
  if opts.default then parts[#parts + 1] = "--default" end
  local pos = {}
  if opts.gap or label == nil then
    parts[#parts + 1] = "--gap"
  else
    if type(label) ~= "string" or not label:find("^[%w_%-]+$") then error("ipxe: invalid item label " .. tostring(label), 2) end
    pos[1] = label
  end
  if text ~= nil then for _, x in ipairs(words(text, 2)) do pos[#pos + 1] = quote(x, 2) end end
  if pos[1] and pos[1]:sub(1, 1) == "-" then parts[#parts + 1] = "--" end
  for _, x in ipairs(pos) do parts[#parts + 1] = x end
  self.lines[#self.lines + 1] = concat(parts, " ")
  return self
end
-- choose(var, {default=, timeout=ms})
function Script:choose(var, opts)
  if type(var) ~= "string" or not var:find("^[%w_%-%./:]+$") then error("ipxe: invalid setting name " .. tostring(var), 2) end
  local parts = { "choose" }
  opts = opts or {}
  if opts.default ~= nil then parts[#parts + 1] = "--default " .. quote(opts.default, 2) end
  if opts.timeout ~= nil then parts[#parts + 1] = "--timeout " .. int_arg(opts.timeout, "choose timeout") end
  parts[#parts + 1] = var
  self.lines[#self.lines + 1] = concat(parts, " ")
  return self
end
function Script:render()
  local body = concat(self.lines, "\n")
  local used, pre = {}, {}
  for hx in body:gmatch("%${bpq(%x%x):string}") do
    if not used[hx] then used[hx] = true; pre[#pre + 1] = "set bpq" .. hx .. ":hex " .. hx end
  end
  table.sort(pre)
  if #pre > 0 then body = concat(pre, "\n") .. "\n" .. body end
  return "#!ipxe\n" .. body .. (body == "" and "" or "\n")
end
Script.__tostring = Script.render

-- grub ----------------------------------------------------------------------------------
-- GRUB reads its config with a shell-like lexer: inside single quotes every byte is literal
-- but the quote itself, which is written as '\'' (close, escaped quote, reopen), as in sh.
-- So every value is one single-quoted word and cannot expand a variable, split, or start a
-- command; a live variable is grub.var(name), written "${name}" (expanded, not split) and
-- joined to its neighbours with no space, so 'a'"${b}"'c' stays one word. A newline or NUL
-- in a value is refused: no value needs one, and a reader should see one command per line.
local grub = {}
local GVAR_TAG, GRAW_TAG, GCFG_TAG = {}, {}, {}
local GVAR = { __name = "grub.var", __metatable = GVAR_TAG }
local GRAW = { __name = "grub.text", __metatable = GRAW_TAG }
local gquote
GVAR.__tostring = function(v) return '"${' .. v.name .. '}"' end
GRAW.__tostring = function(v) return v.text end
local function gcat(a, b) return setmetatable({ text = gquote(a) .. gquote(b) }, GRAW) end
GVAR.__concat, GRAW.__concat = gcat, gcat
function grub.var(name)
  if type(name) ~= "string" or not name:find("^[%a_][%w_]*$") then
    error("grub.var: invalid variable name " .. tostring(name), 2)
  end
  return setmetatable({ name = name }, GVAR)
end
gquote = function(s)
  local mt = getmetatable(s)
  if mt == GVAR_TAG then return '"${' .. s.name .. '}"' end
  if mt == GRAW_TAG then return s.text end
  local ts = type(s)
  if ts == "number" then s = tostring(tointeger(s) or s)
  elseif ts == "boolean" then s = tostring(s)
  elseif ts ~= "string" then perr("grub.quote: expected string, number or grub.var(), got " .. ts) end
  if rfind(s, "\n", 1, true) or rfind(s, "\r", 1, true) or rfind(s, "\0", 1, true) then perr("grub.quote: a newline or NUL byte cannot appear in a GRUB argument") end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
function grub.quote(s) return gquote(s) end

-- Which machine a GRUB config request names, from its file name (any folder before it):
-- grub.cfg-01-52-54-00-77-00-01 (GRUB's own search, and Debian's documentation),
-- grub.cfg-52:54:00:77:00:01 (a config that loads "grub.cfg-${net_default_mac}"),
-- grub.cfg-C0A84D64 (GRUB's search by hex IPv4 address) or plain grub.cfg.
-- Returns { mac = ... } / { ip = ... } / { generic = true }, or nil for any other file.
function grub.config_request(path)
  if type(path) ~= "string" then return nil end
  local name = path:match("([^/]*)$")
  if name == "grub.cfg" then return { generic = true } end
  local rest = name:match("^grub%.cfg%-(.+)$")
  if not rest then return nil end
  local dashed = rest:match("^01%-(%x%x%-%x%x%-%x%x%-%x%x%-%x%x%-%x%x)$")
  local h = hex12(dashed or rest)
  if h and (dashed or rest:find("^%x%x:%x%x:%x%x:%x%x:%x%x:%x%x$")) then return { mac = join(h, ":") } end
  if rest:find("^%x%x%x%x%x%x%x%x$") then
    local n = tointeger(tonumber(rest, 16))
    return { ip = sfmt("%d.%d.%d.%d", (n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255) }
  end
  return nil
end

local Config = {}
Config.__index = Config
Config.__name = "grub.config"
Config.__metatable = GCFG_TAG
function grub.config() return setmetatable({ lines = {}, indent = "" }, Config) end
local function gname(c, what)
  if type(c) ~= "string" or not c:find("^[%a_][%w_%-]*$") then perr("grub: invalid " .. what .. " " .. tostring(c)) end
  return c
end
-- `command arg...`, each argument one quoted word; nil arguments are left out.
local function gemit(self, command, ...)
  local parts = { command }
  for i = 1, select("#", ...) do
    local v = (select(i, ...))
    if v ~= nil then parts[#parts + 1] = gquote(v) end
  end
  self.lines[#self.lines + 1] = self.indent .. concat(parts, " ")
  return self
end
function Config:line(command, ...) return gemit(self, gname(command, "command name"), ...) end
function Config:raw(text)
  if type(text) ~= "string" then error("grub: raw expects a string", 2) end
  self.lines[#self.lines + 1] = self.indent .. text
  return self
end
function Config:comment(text) return self:raw("# " .. tostring(text):gsub("[\r\n]", " ")) end
-- set name=value: the value one quoted word.
function Config:set(name, value)
  gname(name, "variable name")
  self.lines[#self.lines + 1] = self.indent .. "set " .. name .. "=" .. gquote(value)
  return self
end
function Config:timeout(seconds)
  local s = tointeger(seconds)
  if not s or s < -1 then perr("grub: timeout expects an integer number of seconds (-1: wait forever), got " .. tostring(seconds)) end
  return self:set("timeout", s)
end
function Config:default(id) return self:set("default", id) end
function Config:insmod(m) return gemit(self, "insmod", gname(m, "module name")) end
function Config:echo(text) return gemit(self, "echo", text == nil and "" or text) end
function Config:linux(path, ...) return gemit(self, "linux", path, ...) end
function Config:linuxefi(path, ...) return gemit(self, "linuxefi", path, ...) end
function Config:initrd(...) return gemit(self, "initrd", ...) end
function Config:initrdefi(...) return gemit(self, "initrdefi", ...) end
function Config:chainloader(path, ...) return gemit(self, "chainloader", path, ...) end
function Config:configfile(path) return gemit(self, "configfile", path) end
function Config:source(path) return gemit(self, "source", path) end
function Config:boot() return gemit(self, "boot") end
function Config:reboot() return gemit(self, "reboot") end
function Config:exit() return gemit(self, "exit") end
-- menuentry(title, {id=, class= "x" or {...}, unrestricted=true}, function(entry) ... end):
-- the body's commands go inside the braces, indented.
function Config:menuentry(title, opts, body)
  if type(opts) == "function" and body == nil then opts, body = nil, opts end
  if type(body) ~= "function" then perr("grub: menuentry expects a function that adds the entry's commands") end
  opts = opts or {}
  local parts = { "menuentry", gquote(title) }
  if opts.class ~= nil then
    local classes = type(opts.class) == "table" and opts.class or { opts.class }
    for _, c in ipairs(classes) do parts[#parts + 1] = "--class " .. gquote(c) end
  end
  if opts.id ~= nil then parts[#parts + 1] = "--id " .. gquote(opts.id) end
  if opts.unrestricted then parts[#parts + 1] = "--unrestricted" end
  self.lines[#self.lines + 1] = self.indent .. concat(parts, " ") .. " {"
  local outer = self.indent
  self.indent = outer .. "    "
  body(self)
  self.indent = outer
  self.lines[#self.lines + 1] = outer .. "}"
  return self
end
function Config:render()
  return "# generated by bootpolicy\n" .. concat(self.lines, "\n") .. (#self.lines > 0 and "\n" or "")
end
Config.__tostring = Config.render

-- net -----------------------------------------------------------------------------------
local net = {}
local function ipv4(s)
  if type(s) ~= "string" then return nil end
  local a, b, c, d = s:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  if not a then return nil end
  a, b, c, d = tointeger(tonumber(a)), tointeger(tonumber(b)), tointeger(tonumber(c)), tointeger(tonumber(d))
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return ((a * 256 + b) * 256 + c) * 256 + d
end
function net.ipv4(s) return ipv4(s) end
function net.ipv4_string(n)
  if math_type(n) ~= "integer" or n < 0 or n > 0xffffffff then error("net.ipv4_string: expected an integer 0..2^32-1", 2) end
  return sfmt("%d.%d.%d.%d", (n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255)
end
local cidr_cache, cidr_cached = {}, 0
local function cidr(c, level)
  local hit = cidr_cache[c]
  if hit then return hit[1], hit[2] end
  if type(c) ~= "string" then error("net.in_cidr: expected a CIDR such as 10.7.0.0/16, got " .. type(c), level + 1) end
  local base, bits = c:match("^([%d%.]+)/(%d%d?)$")
  if not base then base, bits = c, "32" end
  local b, n = ipv4(base), tointeger(tonumber(bits))
  if not b or not n or n > 32 then error("net.in_cidr: not an IPv4 CIDR: " .. c, level + 1) end
  local shift = 32 - n
  b = n == 0 and 0 or (b >> shift)
  -- Policies call this per request with the same few literals: parse each once.
  if cidr_cached < 256 then cidr_cached = cidr_cached + 1; cidr_cache[c] = { b, shift } end
  return b, shift
end
-- net.in_cidr("10.7.0.0/16", addr) or net.in_cidr({ "10.7.0.0/16", "10.9.0.0/16" }, addr):
-- false for nil or a non-IPv4 address (a request without giaddr), an error for a bad CIDR.
function net.in_cidr(c, addr)
  if type(c) == "table" then
    for _, one in ipairs(c) do if net.in_cidr(one, addr) then return true end end
    return false
  end
  local b, shift = cidr(c, 2)
  local a = ipv4(addr)
  if not a then return false end
  if shift == 32 then return true end
  return (a >> shift) == b
end

-- server ----------------------------------------------------------------------------------
-- Facts about this server (ports, configured address) and the URLs built from them. The
-- address is the configured server_address, else the one the request reached.
local function make_server(facts)
  local s = {}
  for k, v in pairs(facts or {}) do s[k] = v end
  local function addr(req, fn)
    if req ~= nil and type(req) ~= "table" then perr("server." .. fn .. ": expected the request (or nothing)") end
    -- A DHCPv6 client cannot use a configured IPv4 server_address: it gets ours on its link.
    if s.address and not (req and req.family == "ipv6" and not s.address:find(":", 1, true)) then return s.address end
    return req and req.server_address or nil
  end
  function s.tftp_address(req)
    if not s.tftp_port then return nil end
    return addr(req, "tftp_address")
  end
  local function url(req, fn, scheme, port, default)
    if not port then return nil end
    local a = addr(req, fn)
    if not a then return nil end
    if a:find(":", 1, true) then a = "[" .. a .. "]" end
    if port == default then return scheme .. "://" .. a end
    return scheme .. "://" .. a .. ":" .. tostring(port)
  end
  function s.http_url(req) return url(req, "http_url", "http", s.http_port, 80) end
  -- nil unless the server has an HTTPS listener (http.tls).
  function s.https_url(req) return url(req, "https_url", "https", s.https_port, 443) end
  return s
end

-- log -----------------------------------------------------------------------------------
local function fmt(...)
  local n = select("#", ...)
  if n == 0 then return "" end
  local f = ...
  if n == 1 then return tostring(f) end
  if type(f) ~= "string" then
    local t = {}
    for i = 1, n do t[i] = tostring((select(i, ...))) end
    return concat(t, " ")
  end
  local ok, s = pcall(sfmt, ...)
  if not ok then error("log: " .. tostring(s), 3) end
  return s
end
local LEVELS = { debug = 0, info = 1, warn = 2, error = 3 }
local function make_log(pname)
  local log = {}
  for lname, lv in pairs(LEVELS) do
    log[lname] = function(...) return host(OP_LOG, lv, pname, fmt(...)) end
  end
  return setmetatable(log, { __call = function(_, ...) return host(OP_LOG, 1, pname, fmt(...)) end })
end

-- environments --------------------------------------------------------------------------
local P = {}
local NO_DATA = setmetatable({}, { __newindex = function() error("data is read-only", 2) end, __metatable = "read-only data" })
local function base_env(pname, config, dir, data, server)
  local env = copy(G)
  env.data = data or NO_DATA
  env.server = make_server(server)
  env.net = copy(net)
  for k, v in pairs(LIBS) do env[k] = copy(v) end
  env._G = env
  env.collectgarbage = gc_count
  env.config = config
  local log = make_log(pname)
  env.log = log
  env.print = function(...)
    local t = {}
    for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
    return host(OP_LOG, 1, pname, concat(t, "\t"))
  end
  env.mac = copy(mac)
  env.state = copy(state)
  env.ipxe = copy(ipxe)
  env.grub = copy(grub)
  local cache, loading = {}, {}
  env.require = function(name)
    if type(name) ~= "string" then error("require: expected a module name, got " .. type(name), 2) end
    local hit = cache[name]
    if hit ~= nil then return hit end
    if loading[name] then error("require: module '" .. name .. "' requires itself", 2) end
    local src, path = read_module(dir, name)
    if not src then error("require: " .. path, 2) end
    local chunk, err = real_load(src, "@" .. name .. ".lua", "t", env)
    if not chunk then error("require: " .. err, 2) end
    loading[name] = true
    local ok, res = pcall(chunk, name)
    loading[name] = nil
    if not ok then error(res, 0) end
    if res == nil then res = true end
    cache[name] = res
    return res
  end
  return env
end
P.make_env = base_env

-- policy tests --------------------------------------------------------------------------
local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return sfmt("%q", v) end
  if type(v) ~= "table" or depth > 2 then return tostring(v) end
  if getmetatable(v) == SCRIPT_TAG then return sfmt("%q", v:render()) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local t = {}
  for _, k in ipairs(keys) do
    local ks = type(k) == "string" and k:find("^[%a_][%w_]*$") and k or "[" .. show(k) .. "]"
    t[#t + 1] = ks .. "=" .. show(v[k], depth + 1)
  end
  return "{" .. concat(t, ", ") .. "}"
end
local function deep_eq(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
local function summary(req)
  if type(req) ~= "table" then return "" end
  local t = { tostring(req.kind) }
  for _, k in ipairs({ "message_type", "mac", "arch", "firmware", "path" }) do
    if req[k] ~= nil then t[#t + 1] = k .. "=" .. tostring(req[k]) end
  end
  if req.ipxe then t[#t + 1] = "ipxe" end
  return concat(t, " ")
end

function P.make_test_env(pname, config, dir, data, server)
  local env = base_env(pname, config, dir, data, server)
  local last_req
  local function fail(msg, level)
    local s = msg
    if last_req then s = s .. "\n    request: " .. summary(last_req) end
    error(s, level + 1)
  end
  local function label(msg) return msg and (tostring(msg) .. ": ") or "" end
  function env.eq(got, want, msg)
    if not deep_eq(got, want) then
      fail(sfmt("%sexpected %s\n    got      %s", label(msg), show(want), show(got)), 2)
    end
  end
  function env.is_nil(v, msg) if v ~= nil then fail(label(msg) .. "expected nil, got " .. show(v), 2) end end
  function env.is_true(v, msg) if not v then fail(label(msg) .. "expected a true value, got " .. show(v), 2) end end
  function env.contains(hay, needle, msg)
    if type(hay) == "string" and type(needle) == "string" then
      if not hay:find(needle, 1, true) then fail(sfmt("%sexpected %s to contain %s", label(msg), show(hay), show(needle)), 2) end
      return
    end
    if type(hay) == "table" then
      for _, v in pairs(hay) do if deep_eq(v, needle) then return end end
    end
    fail(sfmt("%sexpected %s to contain %s", label(msg), show(hay), show(needle)), 2)
  end
  function env.silent(d, msg) if d ~= nil then fail(label(msg) .. "expected no decision, got " .. show(d), 2) end end
  function env.request(t)
    if type(t) ~= "table" then error("request: expected a table", 2) end
    return host(OP_REQUEST, t)
  end
  function env.fixture(path, overrides)
    if type(path) ~= "string" then error("fixture: expected a path", 2) end
    local req = host(OP_FIXTURE, path)
    if overrides ~= nil then
      if type(overrides) ~= "table" then error("fixture: overrides must be a table", 2) end
      for k, v in pairs(overrides) do req[k] = v end
      req = host(OP_REQUEST, req)
    end
    return req
  end
  local Chain = {}
  Chain.__index = Chain
  local function run(kind)
    return function(self, req)
      if type(req) ~= "table" then error("chain:" .. kind .. ": expected a request table", 2) end
      local r = copy(req)
      r.kind = kind
      last_req = r
      return host(OP_RUN, self.id, r)
    end
  end
  Chain.dhcp, Chain.tftp, Chain.http = run("dhcp"), run("tftp"), run("http")
  -- What the ProxyDHCP server would send for a DHCP request: { to=, port=, broadcast=,
  -- message_type=, siaddr=, file=, sname=, options = { [code] = bytes }, policy= }, or
  -- { silent = reason } (a non-PXE client, no decision, ignore, ...).
  function Chain:reply(req)
    if type(req) ~= "table" then error("chain:reply: expected a request table", 2) end
    local r = copy(req)
    r.kind = "dhcp"
    last_req = r
    return host(OP_REPLY, self.id, r)
  end
  -- The chain's per-client state, as its policies see it: read, preload, clear.
  function Chain:state(m) return host(OP_TSTATE, self.id, "get", mac.normalize(m)) end
  function Chain:set_state(m, t, ttl)
    if type(t) ~= "table" then error("chain:set_state: expected (mac, table, ttl?)", 2) end
    return host(OP_TSTATE, self.id, "set", mac.normalize(m), t, ttl)
  end
  function Chain:clear_state(m) return host(OP_TSTATE, self.id, "clear", mac.normalize(m)) end
  -- Moves the chain's clock forward: state whose ttl ran out is gone, as it would be.
  function Chain:advance(seconds)
    if type(seconds) ~= "number" or seconds < 0 then error("chain:advance: expected seconds >= 0", 2) end
    return host(OP_ADVANCE, self.id, seconds)
  end
  -- policy_chain(list, { data = { name = "file" | { file=, key=, key_format= } }, server = { http_port=, ... } })
  function env.policy_chain(list, opts)
    if type(list) ~= "table" then error("policy_chain: expected a list of {file=, config=}", 2) end
    if opts ~= nil and type(opts) ~= "table" then error("policy_chain: options must be a table {data=, server=}", 2) end
    return setmetatable({ id = host(OP_CHAIN, list, opts) }, Chain)
  end
  function env.test(name, fn)
    if type(name) ~= "string" or type(fn) ~= "function" then error("test: expected test(name, function)", 2) end
    last_req = nil
    local ok, err = xpcall(fn, function(m)
      return tostring(m)
    end)
    host(OP_RESULT, name, ok, ok and nil or err)
  end
  return env
end

return P
"""#
}
