# Turns `tcpdump -l -n -tt -vvv -A` text from the boot server's namespace into one event per line:
#   <epoch> dhcp-fw|dhcp-ipxe <mac> <vendor-class>
#   <epoch> tftp <path>
#   <epoch> http <path>
# A DHCP request counts as iPXE when it carries option 175 or user class "iPXE" (what the
# dnsmasq reference matches with --dhcp-match=IPXEBOOT,175); anything else is the firmware.
# Usage: awk -v mac=52:54:00:77:00:01 -f events.awk packets.txt
function flush() {
  if (req && (mac == "" || reqmac == mac)) {
    kind = ipxe ? "dhcp-ipxe" : "dhcp-fw"
    print ts, kind, reqmac, (vendor == "" ? "-" : vendor)
  }
  req = 0; ipxe = 0; vendor = ""; reqmac = ""
}
/^[0-9]+\.[0-9]+ IP/ { flush(); ts = $1; next }
/BOOTP\/DHCP, Request from/ {
  req = 1
  for (i = 1; i <= NF; i++) if ($i == "from") { reqmac = $(i + 1); sub(/,$/, "", reqmac) }
  next
}
req && /Vendor-Class \(60\), length [0-9]+: "/ { v = $0; sub(/^[^"]*"/, "", v); sub(/".*$/, "", v); vendor = v; next }
req && (/\(175\)|Unknown \(175\)|Option 175/ || /"iPXE"/) { ipxe = 1; next }
/ > [0-9.]+\.69: .*RRQ "/ {
  p = $0; sub(/^.*RRQ "/, "", p); sub(/".*$/, "", p); print ts, "tftp", p; next
}
/GET \/[^ ]* HTTP\/1\.[01]/ {
  p = $0; sub(/^.*GET /, "", p); sub(/ HTTP\/1\.[01].*$/, "", p); print ts, "http", p; next
}
END { flush() }
