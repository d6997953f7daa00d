# Turns `tcpdump -l -n -tt -vvv -A` text from the boot server's namespace into one event per line:
#   <epoch> dhcp-fw|dhcp-ipxe <mac> <vendor-class>
#   <epoch> dhcp6-fw|dhcp6-ipxe <mac> <vendor-class>   a DHCPv6 Solicit from the client (port 547)
#   <epoch> dhcp6-adv <client-address> <boot-file-url> <vendor-class>   an Advertise that carries a boot file URL
#   <epoch> dhcp6-req4011 <client-address> -           a DHCPv6 Request to port 4011 (EDK2's PXE follow-up)
#   <epoch> dhcp6-rep4011 <client-address> <boot-file-url>   its answer from port 4011
#   <epoch> tftp <path> <client-address>
#   <epoch> http <path> <client-address>              a GET toward the server (IPv4 or IPv6 client)
#   <epoch> tls-syn <client-address> -                a TCP connection opened to the HTTPS port (-v tlsport=, 8443)
#   <epoch> dhcp-reply <client-mac> -                  a DHCPv4 answer from any server (ports 67 -> 68)
# A DHCP request counts as iPXE when it carries option 175 or user class "iPXE" (what the
# dnsmasq reference matches with --dhcp-match=IPXEBOOT,175); anything else is the firmware.
# A DHCPv6 Solicit is the client's when its client-ID holds the MAC (DUID-LL/LLT) or it comes
# from the MAC's EUI-64 link-local address.
# Usage: awk -v mac=52:54:00:77:00:01 [-v eui=fe80::5054:ff:fe77:1] -f events.awk packets.txt
BEGIN { machex = tolower(mac); gsub(/:/, "", machex); if (tlsport == "") tlsport = 8443 }
function flush() {
  if (req && (mac == "" || reqmac == mac)) {
    kind = ipxe ? "dhcp-ipxe" : "dhcp-fw"
    print ts, kind, reqmac, (vendor == "" ? "-" : vendor)
  }
  if (v6 != "") {
    if (v6 == "solicit" && (mac == "" || v6mine))
      print ts, (ipxe ? "dhcp6-ipxe" : "dhcp6-fw"), mac, (vendor == "" ? "-" : vendor)
    else if (v6 == "advertise" && url != "") print ts, "dhcp6-adv", v6dst, url, (vendor == "" ? "-" : vendor)
    else if (v6 == "req4011") print ts, "dhcp6-req4011", v6src, "-"
    else if (v6 == "rep4011") print ts, "dhcp6-rep4011", v6dst, (url == "" ? "-" : url)
  }
  req = 0; ipxe = 0; vendor = ""; reqmac = ""; v6 = ""; v6mine = 0; url = ""
}
# "host.port" -> host, port (IPv4 dotted quads and IPv6 both end in .PORT).
function hostof(hp) { sub(/:$/, "", hp); sub(/\.[0-9]+$/, "", hp); return hp }
function portof(hp) { sub(/:$/, "", hp); sub(/^.*\./, "", hp); return hp }
/^[0-9]+\.[0-9]+ IP6 / {
  flush(); ts = $1
  for (i = 1; i <= NF; i++) if ($i == ">") { src = $(i - 1); dst = $(i + 1) }
  v6src = hostof(src); v6dst = hostof(dst)
  lastsrc = v6src
  sp = portof(src); dp = portof(dst)
  if (dp == 547 && / dhcp6 solicit /) {
    v6 = "solicit"
    if ((machex != "" && index($0, machex) > 0) || (eui != "" && v6src == eui)) v6mine = 1
  } else if (sp == 547 && / dhcp6 advertise /) v6 = "advertise"
  else if (dp == 4011 && sp == 4011) v6 = "req4011"
  else if (sp == 4011) v6 = "rep4011"
  # The TFTP read request is on this same line (tcpdump decodes it in the header line).
  if (dp == 69 && / RRQ "/) { p = $0; sub(/^.*RRQ "/, "", p); sub(/".*$/, "", p); print ts, "tftp", p, v6src }
  next
}
/^[0-9]+\.[0-9]+ IP/ { flush(); ts = $1; next }
# tcpdump -vvv puts an IPv4 packet's addresses on its second line: remember the sender.
/^ +[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+ > / { lastsrc = hostof($1) }
# A TCP SYN toward the HTTPS port (its requests are encrypted: the connection is what shows).
/^ +[0-9.]+ > [0-9.]+: Flags \[S\]/ && portof($3) == tlsport { print ts, "tls-syn", hostof($1), "-"; next }
/ > [0-9.]+\.69: .*RRQ "/ {
  p = $0; sub(/^.*RRQ "/, "", p); sub(/".*$/, "", p)
  c = $0; sub(/ > .*$/, "", c); sub(/^.* /, "", c); print ts, "tftp", p, hostof(c); next
}
/BOOTP\/DHCP, Reply/ { print ts, "dhcp-reply", "-", "-"; next }
/BOOTP\/DHCP, Request from/ {
  req = 1
  for (i = 1; i <= NF; i++) if ($i == "from") { reqmac = $(i + 1); sub(/,$/, "", reqmac) }
  next
}
req && /Vendor-Class \(60\), length [0-9]+: "/ { v = $0; sub(/^[^"]*"/, "", v); sub(/".*$/, "", v); vendor = v; next }
req && (/\(175\)|Unknown \(175\)|Option 175/ || /"iPXE"/) { ipxe = 1; next }
# DHCPv6 payloads are read from tcpdump's ASCII dump (-A): the vendor class and user class
# strings, the boot file URL (option 59; it ends where the next option's code, two bytes that
# -A prints as "..", begins: good enough for the timeline, the pass check reads the server log).
v6 != "" && /(PXEClient|HTTPClient)/ { match($0, /(PXEClient|HTTPClient)(:[A-Za-z]+:[0-9]+)*/); vendor = substr($0, RSTART, RLENGTH) }
v6 != "" && /iPXE/ { ipxe = 1 }
v6 != "" && /(tftp|http):\/\/\[/ { match($0, /(tftp|http):\/\/\[[0-9a-fA-F:]+\][^ ]*/); u = substr($0, RSTART, RLENGTH); sub(/\.\..*$/, "", u); url = u }
/GET \/[^ ]* HTTP\/1\.[01]/ {
  p = $0; sub(/^.*GET /, "", p); sub(/ HTTP\/1\.[01].*$/, "", p); print ts, "http", p, (lastsrc == "" ? "-" : lastsrc); next
}
END { flush() }
