-- The machines inventory.lua knows, by MAC. A real site generates this file from its CMDB.
return {
  ["52:54:00:00:00:01"] = {
    name = "web-01",
    kernel = "http://192.168.77.2:8080/debian/vmlinuz",
    initrd = "http://192.168.77.2:8080/debian/initrd.gz",
    cmdline = "auto=true priority=critical url=http://192.168.77.2:8080/preseed/web.cfg",
  },
  ["52:54:00:00:00:02"] = {
    name = "db-01",
    kernel = "http://192.168.77.2:8080/debian/vmlinuz",
    initrd = "http://192.168.77.2:8080/debian/initrd.gz",
    cmdline = "auto=true priority=critical url=http://192.168.77.2:8080/preseed/db.cfg",
  },
}
