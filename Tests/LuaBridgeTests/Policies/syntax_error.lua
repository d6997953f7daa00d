return {
  dhcp = function(req)
    return { filename = "x" 
  end,
}
