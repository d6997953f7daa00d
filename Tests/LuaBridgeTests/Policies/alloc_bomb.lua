return {
  dhcp = function(req)
    local t = {}
    local s = string.rep("x", 1024 * 1024)
    for i = 1, 1e9 do t[i] = s .. i end
  end,
  tftp = function(req)
    return { content = string.rep("y", 64 << 20) }
  end,
}
