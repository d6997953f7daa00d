-- The built-in library (mac, ipxe) exercised directly, without a chain.

test("mac formats", function()
  for _, m in ipairs({ "52:54:00:AB:cd:ef", "52-54-00-ab-cd-ef", "525400abcdef", "5254.00ab.cdef" }) do
    eq(mac.normalize(m), "52:54:00:ab:cd:ef")
    eq(mac.colon(m), "52:54:00:ab:cd:ef")
    eq(mac.hexhyp(m), "52-54-00-ab-cd-ef")
    eq(mac.hexraw(m), "525400abcdef")
    is_true(mac.valid(m))
  end
  eq(mac.valid("52:54:00:ab:cd"), false)
  local ok, err = pcall(mac.hexhyp, "nope")
  eq(ok, false)
  contains(err, "mac.hexhyp: not a MAC address: nope")
end)

test("ipxe.quote", function()
  eq(ipxe.quote("plain"), "plain")
  eq(ipxe.quote(42), "42")
  eq(ipxe.quote("a b"), "a${bpq20:string}b")
  eq(ipxe.quote("line\nbreak"), "line${bpq0a:string}break")
  eq(ipxe.quote("#x"), "${bpq23:string}x")
  eq(ipxe.quote("a#x"), "a#x")
  eq(ipxe.quote("&&"), "${bpq26:string}&")
  eq(ipxe.quote(";"), "${bpq3b:string}")
  eq(ipxe.quote("end\\"), "end${bpq5c:string}")
  eq(ipxe.quote(""), "${bpq-empty}")
  eq(ipxe.quote("${unclosed"), "${unclosed")
  eq(ipxe.quote(ipxe.var("net0/mac")), "${net0/mac}")
  eq(ipxe.quote("u=" .. ipxe.var("uuid") .. " x"), "u=${uuid}${bpq20:string}x")
  local ok, err = pcall(ipxe.quote, "${x}")
  eq(ok, false)
  contains(err, "use ipxe.var(name)")
  ok, err = pcall(ipxe.quote, "a\0b")
  contains(err, "NUL byte")
  ok, err = pcall(ipxe.var, "bad name")
  contains(err, "invalid setting name")
end)

test("script builder", function()
  local s = ipxe.script()
    :comment("menu for\nclient")
    :dhcp()
    :menu("Boot  menu")
    :item("local", "Local disk", { default = true, key = "l" })
    :item(nil, "-- tools --")
    :item("shell", "iPXE shell")
    :choose("target", { default = "local", timeout = 5000 })
    :go(ipxe.var("target"))
    :label("local")
    :exit(1)
    :label("shell")
    :line("shell")
    :sleep(2)
    :initrd("http://h/initrd", "initrd.magic")
    :imgfetch("http://h/x")
    :set("n", 5)
    :set("who", ipxe.var("hostname"))
    :raw("echo ${hostname} raw")
  eq(s:render(), table.concat({
    "#!ipxe",
    "# menu for client",
    "dhcp",
    "menu Boot ${bpq-empty} menu",
    "item --key l --default local Local disk",
    "item --gap -- -- tools --",
    "item shell iPXE shell",
    "choose --default local --timeout 5000 target",
    "goto ${target}",
    ":local",
    "exit 1",
    ":shell",
    "shell",
    "sleep 2",
    "initrd --name initrd.magic http://h/initrd",
    "imgfetch http://h/x",
    "set n 5",
    "set who ${hostname}",
    "echo ${hostname} raw",
    "",
  }, "\n"))
  eq(tostring(ipxe.script()), "#!ipxe\n")
  eq(ipxe.script():menu("-x- menu"):echo("-n"):render(), "#!ipxe\nmenu -- -x- menu\necho -- -n\n")
  local ok, err = pcall(function() ipxe.script():sleep(-1) end)
  contains(err, "sleep expects a non-negative integer")
  ok, err = pcall(function() ipxe.script():line("bad cmd") end)
  contains(err, "invalid command name")
end)

test("costly patterns pay into the budget, ordinary ones work", function()
  local host = string.rep("a", 250)
  -- No pattern is refused for its shape any more: what is affordable runs...
  eq(host:sub(1, 30):find("(.-)(.-)(.-)(.-)x"), nil)
  eq(host:sub(1, 40):match(".*.*.*b"), nil)
  eq(select(3, (host .. "x"):find("(.-)(.-)(.-)(.-)x")), "")
  -- ...and what is not ends with the budget error, as a loop would (this file runs with a
  -- generous budget; policy_chain runs the policy with the default one).
  for _, what in ipairs({ "backtrack", "balance", "pcall" }) do
    local chain = policy_chain { { file = "../hostile.lua", config = { what = what } } }
    local ok, err = pcall(function() return chain:dhcp(request { mac = "52:54:00:12:34:56" }) end)
    eq(ok, false, what)
    contains(err, "policy exceeded its budget", what)
  end
  -- The wrapped and replaced functions raise the stock argument errors.
  contains(select(2, pcall(string.rep)), "bad argument #1 to 'string.rep' (string expected, got no value)")
  contains(select(2, pcall(string.upper)), "bad argument #1 to 'string.upper' (string expected, got no value)")
  contains(select(2, pcall(function() return ("x"):rep("y") end)), "bad argument #1 to 'rep' (number expected, got string)")
  contains(select(2, pcall(table.move, {}, 1, math.maxinteger, 2)), "destination wrap around")
  contains(select(2, pcall(table.insert, {}, 5, 1)), "bad argument #2 to 'table.insert' (position out of bounds)")
  contains(select(2, pcall(table.unpack, {}, 1, 1e7)), "too many results to unpack")
  contains(select(2, pcall(string.byte, string.rep("x", 2e6), 1, -1)), "string slice too long")
  eq(("ab"):rep(3, ","), "ab,ab,ab")
  eq(table.concat({ 1, 2, 3 }, "-", 2), "2-3")
  eq(select("#", ("abc"):byte(1, -1)), 3)
  eq(pcall(string.find, "x", "(%b"), false)
  contains(select(2, pcall(string.match, "x", "[a")), "malformed pattern (missing ']')")
  -- anchored, a few items, short subjects: fine
  eq(("PXEClient:Arch:00007:UNDI:003016"):match("^PXEClient:Arch:(%d+)"), "00007")
  eq(("/boot/52-54-00-12-34-56.ipxe"):match("^/boot/([%x%-]+)%.ipxe$"), "52-54-00-12-34-56")
  eq(select(2, ("a b c"):gsub("%s+", "_")), 2)
  eq(host:find("aaa", 1, true), 1)
  local n = 0
  for w in ("a,b,,c"):gmatch("[^,]*") do n = n + 1 end
  is_true(n >= 4)
  eq(("x%d"):find("%%d"), 2)
  eq(("[a]"):find("[%]]"), 3)
end)

test("the library quotes long strings within the budget", function()
  local long = string.rep("word ", 20000)
  local s = ipxe.script():echo(long):render()
  is_true(#s > 100000)
  contains(ipxe.quote(string.rep("x y", 5000)), "x${bpq20:string}y")
end)
