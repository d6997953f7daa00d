-- config.kind selects a bad decision
local bad = {
  typo = function() return { filenme = "x" } end,
  type = function() return { filename = 42 } end,
  server = function() return { next_server = "not-an-ip" } end,
  status = function() return { status = 999 } end,
  option = function() return { options = { [300] = "x" } } end,
  optval = function() return { options = { [43] = true } } end,
  string = function() return "yes" end,
  reqfield = function(req) return { filename = req.hostnmae } end,
}
return { dhcp = function(req) return bad[config.kind](req) end }
