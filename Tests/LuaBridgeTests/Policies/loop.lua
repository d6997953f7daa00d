return {
  dhcp = function(req)
    while true do end
  end,
  tftp = function(req)
    -- pcall cannot swallow the budget error
    while true do pcall(function() while true do end end) end
  end,
}
