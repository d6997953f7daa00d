return {
  name = "config-echo",
  dhcp = function(req)
    return { note = config.greeting .. " " .. tostring(config.count) .. " " .. config.list[2] .. " " .. tostring(config.nested.flag) }
  end,
}
