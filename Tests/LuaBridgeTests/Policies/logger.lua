log("loading %s", "logger")
return {
  dhcp = function(req)
    log.info("dhcp from %s", req.mac)
    log.warn("warn %d", 3)
    print("printed", 1, true)
  end,
}
