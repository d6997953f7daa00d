-- The http hook sees method, headers (lower-case names) and body.
return {
  name = "callback",
  http = function(req)
    if req.path == "/echo" then
      local n = 0
      for _ in pairs(req.headers) do n = n + 1 end
      return { content = req.method .. "|" .. (req.headers["x-secret"] or "-") .. "|" .. req.body .. "|" .. n }
    end
    return nil
  end,
  dhcp = function(req)
    -- Outside HTTP: no method, no body, an empty header table.
    local n = 0
    for _ in pairs(req.headers) do n = n + 1 end
    return { filename = tostring(req.method) .. "/" .. tostring(req.body) .. "/" .. n }
  end,
}
