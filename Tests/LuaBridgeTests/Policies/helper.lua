local M = {}
function M.loader(req) return req.ipxe and "helper.ipxe" or "helper.kpxe" end
M.who = config.who
return M
