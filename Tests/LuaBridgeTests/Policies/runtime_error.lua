return {
  dhcp = function(req)
    local t = nil
    return { filename = t.name }
  end,
}
