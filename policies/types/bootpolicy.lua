---@meta bootpolicy
-- lua-language-server definitions for bootpolicy policies and policy tests.
-- Add this folder to "workspace.library" in .luarc.json. See policies/README.md.

---@alias BootKind "dhcp"|"tftp"|"http"
---@alias BootFirmware "bios"|"uefi"|"ipxe"|"http-boot"|"unknown"

---@class BootRelay
---@field giaddr string "0.0.0.0" when option 82 came without a relay (a snooping switch)
---@field circuit_id string? text when printable ASCII, else lower-case hex
---@field remote_id string? text when printable ASCII, else lower-case hex
---@field circuit_id_hex string? always lower-case hex
---@field remote_id_hex string? always lower-case hex

---@class BootRequest
---@field kind BootKind which server saw the request (selects the hook)
---@field mac string client MAC, "52:54:00:12:34:56" (lower case), "" when unknown
---@field xid integer? DHCP transaction id
---@field message_type string? "discover", "request", "inform", ...
---@field arch string? option 93 by name: "bios", "efi-x64", "efi-arm64", ...
---@field arch_code integer? option 93 as a number
---@field firmware BootFirmware
---@field vendor_class string? option 60
---@field user_class string[] option 77 (empty when absent)
---@field ipxe boolean the request carried option 175 (iPXE)
---@field ipxe_features table<string, integer> iPXE feature flags from option 175
---@field uuid string? option 97
---@field hostname string? option 12
---@field relay BootRelay? option 82 / giaddr, nil when not relayed
---@field interface string?
---@field client_address string?
---@field server_address string?
---@field server_port integer?
---@field options table<integer, string> every DHCP option as raw bytes (DHCPv6: by its 16-bit code)
---@field family "ipv4"|"ipv6" DHCPv4 or DHCPv6; for TFTP and HTTP the family of the client's address
---@field duid string? DHCPv6: the client's DUID, colon hex
---@field path string? TFTP file / HTTP path (no query)
---@field query table<string, string> HTTP query parameters
---@field method string? HTTP method
---@field scheme "http"|"https"|nil HTTP: the listener the request came in on (https: http.tls)
---@field headers table<string, string> HTTP headers, names in lower case
---@field body string? HTTP request body

---@alias DHCPOptionValue string|integer|string[]

---@class BootDecision
---@field ignore boolean? dhcp: stay silent
---@field filename string? dhcp: boot file name
---@field next_server string? dhcp: TFTP server (IPv4; for a DHCPv6 client an IPv6 one, the host of its tftp:// URL)
---@field server_name string? dhcp: sname
---@field ipxe_script string|IpxeScript? a generated iPXE script
---@field options table<integer, DHCPOptionValue>? dhcp: extra options 1..254; integers are 4 bytes big-endian, string arrays are concatenated
---@field content string? tftp/http: serve these bytes
---@field content_type string? http: Content-Type
---@field path string? tftp/http: serve this file instead
---@field refuse string? tftp/http: refuse with this reason
---@field status integer? http: status 100..599
---@field note string? free text for the log
---@field address string? dhcp, full mode: the address this client holds (a reservation in a served subnet)

---@class BootPolicy
---@field name string?
---@field dhcp (fun(req: BootRequest): BootDecision?)?
---@field tftp (fun(req: BootRequest): BootDecision?)?
---@field http (fun(req: BootRequest): BootDecision?)?

---This policy's configuration table from the bootpolicy config file.
---@type table<string, any>
config = {}

---The configuration's data files (data: in the config), read-only: data.<name>.
---@type table<string, any>
data = {}

---@class BootServer
---@field http_port integer? nil when HTTP is off
---@field https_port integer? nil without an HTTPS listener (http.tls)
---@field tftp_port integer? nil when TFTP is off
---@field dhcp_ports integer[]?
---@field address string? server_address from the configuration
server = {}
---http://ADDRESS:PORT of this server (ADDRESS: server_address, else the one the request reached); nil when HTTP is off.
---@param req BootRequest?
---@return string?
function server.http_url(req) end
---https://ADDRESS:PORT of the HTTPS listener (http.tls); nil without one.
---@param req BootRequest?
---@return string?
function server.https_url(req) end
---The address TFTP answers on for this request; nil when TFTP is off.
---@param req BootRequest?
---@return string?
function server.tftp_address(req) end

net = {}
---True when IPv4 `addr` is inside `cidr` ("10.7.0.0/16", or a list of them); false for nil or non-IPv4.
---@param cidr string|string[]
---@param addr string?
---@return boolean
function net.in_cidr(cidr, addr) end
---@param s string?
---@return integer?
function net.ipv4(s) end
---@param n integer
---@return string
function net.ipv4_string(n) end

---@class BootLog
---@overload fun(fmt: any, ...: any)
log = {}
---@param fmt any
---@param ... any
function log.debug(fmt, ...) end
---@param fmt any
---@param ... any
function log.info(fmt, ...) end
---@param fmt any
---@param ... any
function log.warn(fmt, ...) end
---@param fmt any
---@param ... any
function log.error(fmt, ...) end

---Logs its arguments, tab-separated, at info.
---@param ... any
function print(...) end

---@class IpxeVar
---@operator concat(string): IpxeText

---@class IpxeText
---@operator concat(string|IpxeVar): IpxeText

---@class IpxeItemOptions
---@field key string?
---@field default boolean?
---@field gap boolean?

---@class IpxeChooseOptions
---@field default string?
---@field timeout integer? milliseconds

---@class IpxeScript
---@operator concat(string): string
local IpxeScript = {}
---@param command string
---@param ... string|number|IpxeVar|IpxeText
---@return IpxeScript
function IpxeScript:line(command, ...) end
---@param text string unquoted
---@return IpxeScript
function IpxeScript:raw(text) end
---@param text string
---@return IpxeScript
function IpxeScript:comment(text) end
---@param name string
---@param value string|number|IpxeVar|IpxeText
---@return IpxeScript
function IpxeScript:set(name, value) end
---@param text string|IpxeVar|IpxeText
---@return IpxeScript
function IpxeScript:echo(text) end
---@param url string|IpxeVar|IpxeText
---@param ... string|number|IpxeVar|IpxeText kernel arguments
---@return IpxeScript
function IpxeScript:kernel(url, ...) end
---@param url string|IpxeVar|IpxeText
---@param name string?
---@return IpxeScript
function IpxeScript:initrd(url, name) end
---@param url string|IpxeVar|IpxeText
---@param ... string|number|IpxeVar|IpxeText
---@return IpxeScript
function IpxeScript:chain(url, ...) end
---@param url string|IpxeVar|IpxeText
---@param ... string|number|IpxeVar|IpxeText
---@return IpxeScript
function IpxeScript:imgfetch(url, ...) end
---@return IpxeScript
function IpxeScript:boot(...) end
---@return IpxeScript
function IpxeScript:dhcp() end
---@param code integer?
---@return IpxeScript
function IpxeScript:exit(code) end
---@param seconds integer
---@return IpxeScript
function IpxeScript:sleep(seconds) end
---@param title string?
---@return IpxeScript
function IpxeScript:menu(title) end
---@param label string?
---@param text string?
---@param opts IpxeItemOptions?
---@return IpxeScript
function IpxeScript:item(label, text, opts) end
---@param var string
---@param opts IpxeChooseOptions?
---@return IpxeScript
function IpxeScript:choose(var, opts) end
---@param name string
---@return IpxeScript
function IpxeScript:label(name) end
---`goto label` (named `go` because `goto` is a Lua keyword).
---@param label string|IpxeVar
---@return IpxeScript
function IpxeScript:go(label) end
---@return string script "#!ipxe\n..."
function IpxeScript:render() end

ipxe = {}
---@return IpxeScript
function ipxe.script() end
---Quotes one argument for iPXE's parser (errors on a literal "${...}").
---@param v string|number|boolean|IpxeVar|IpxeText
---@return string
function ipxe.quote(v) end
---A live iPXE setting reference, ${name}.
---@param name string
---@return IpxeVar
function ipxe.var(name) end

---@class GrubVar
---@class GrubText
---@class GrubEntryOptions
---@field id string?
---@field class string|string[]?
---@field unrestricted boolean?

---@class GrubConfig
local GrubConfig = {}
---@param command string a plain command name
---@param ... string|number|GrubVar|GrubText arguments, each one quoted word (nil left out)
---@return GrubConfig
function GrubConfig:line(command, ...) end
---@param text string written as is
---@return GrubConfig
function GrubConfig:raw(text) end
---@param text string
---@return GrubConfig
function GrubConfig:comment(text) end
---@param name string
---@param value string|number|GrubVar|GrubText
---@return GrubConfig
function GrubConfig:set(name, value) end
---@param seconds integer -1: wait forever
---@return GrubConfig
function GrubConfig:timeout(seconds) end
---@param id string
---@return GrubConfig
function GrubConfig:default(id) end
---@param title string
---@param opts GrubEntryOptions|fun(entry: GrubConfig)
---@param body fun(entry: GrubConfig)?
---@return GrubConfig
function GrubConfig:menuentry(title, opts, body) end
---@param path string|GrubVar|GrubText
---@param ... string|number|GrubVar|GrubText kernel arguments
---@return GrubConfig
function GrubConfig:linux(path, ...) end
---@return GrubConfig
function GrubConfig:linuxefi(path, ...) end
---@param ... string|GrubVar|GrubText
---@return GrubConfig
function GrubConfig:initrd(...) end
---@return GrubConfig
function GrubConfig:initrdefi(...) end
---@return GrubConfig
function GrubConfig:chainloader(path, ...) end
---@return GrubConfig
function GrubConfig:configfile(path) end
---@return GrubConfig
function GrubConfig:source(path) end
---@param name string
---@return GrubConfig
function GrubConfig:insmod(name) end
---@return GrubConfig
function GrubConfig:echo(text) end
---@return GrubConfig
function GrubConfig:boot() end
---@return GrubConfig
function GrubConfig:reboot() end
---@return GrubConfig
function GrubConfig:exit() end
---@return string config "# generated by bootpolicy\n..."
function GrubConfig:render() end

grub = {}
---@return GrubConfig
function grub.config() end
---One single-quoted GRUB word (errors on a newline or NUL).
---@param v string|number|boolean|GrubVar|GrubText
---@return string
function grub.quote(v) end
---A live GRUB variable, "${name}".
---@param name string
---@return GrubVar
function grub.var(name) end
---Which machine a GRUB config file name names: {mac=}, {ip=}, {generic=true}, or nil.
---@param path string?
---@return {mac: string?, ip: string?, generic: boolean?}?
function grub.config_request(path) end

mac = {}
---@param m string
---@return string "52:54:00:12:34:56"
function mac.normalize(m) end
---@param m string
---@return string "52:54:00:12:34:56"
function mac.colon(m) end
---@param m string
---@return string "52-54-00-12-34-56"
function mac.hexhyp(m) end
---@param m string
---@return string "525400123456"
function mac.hexraw(m) end
---@param m any
---@return boolean
function mac.valid(m) end

---@alias StateValue string|number|boolean

state = {}
---@param mac string
---@return table<string, StateValue>?
function state.get(mac) end
---@param mac string
---@param values table<string, StateValue>
---@param ttl_seconds number?
function state.set(mac, values, ttl_seconds) end
---@param mac string
function state.clear(mac) end

---Loads name.lua from the policy's own directory (letters, digits, '_' and '-' only).
---@param name string
---@return any
function require(name) end

-- Policy tests (*_test.lua) ---------------------------------------------------------------

---@class PolicyChainEntry
---@field file string path relative to the test file
---@field config table<string, any>?
---@field name string?

---@class TestDecision: BootDecision
---@field policy string the policy that decided

---@class PolicyChainHandle
local PolicyChainHandle = {}
---@param req BootRequest|table
---@return TestDecision?
function PolicyChainHandle:dhcp(req) end
---@param req BootRequest|table
---@return TestDecision?
function PolicyChainHandle:tftp(req) end
---@param req BootRequest|table
---@return TestDecision?
function PolicyChainHandle:http(req) end
---@class TestReply
---@field silent string? why the server would send nothing
---@field to string?
---@field port integer?
---@field broadcast boolean?
---@field message_type string?
---@field siaddr string?
---@field yiaddr string?
---@field ciaddr string?
---@field giaddr string?
---@field file string?
---@field sname string?
---@field options table<integer, string>?
---@field policy string?
---What the ProxyDHCP server would send for this DHCP request.
---@param req BootRequest|table
---@return TestReply
function PolicyChainHandle:reply(req) end
---@param mac string
---@return table<string, any>?
function PolicyChainHandle:state(mac) end
---@param mac string
---@param values table<string, string|number|boolean>
---@param ttl number?
function PolicyChainHandle:set_state(mac, values, ttl) end
---@param mac string
function PolicyChainHandle:clear_state(mac) end
---Moves the chain's clock on (state expires as after that much time).
---@param seconds number
function PolicyChainHandle:advance(seconds) end

---@class PolicyChainOptions
---@field data table<string, string|{file: string, key: string?, key_format: "verbatim"|"mac"?}>?
---@field server {http_port: integer|false?, https_port: integer|false?, tftp_port: integer|false?, address: string?}?

---@param entries PolicyChainEntry[]
---@param opts PolicyChainOptions?
---@return PolicyChainHandle
function policy_chain(entries, opts) end
---@param path string fixture JSON, relative to the test file
---@param overrides table? request fields to replace
---@return BootRequest
function fixture(path, overrides) end
---@param fields table request fields (kind defaults to "dhcp")
---@return BootRequest
function request(fields) end
---@param name string
---@param fn fun()
function test(name, fn) end
---@param got any
---@param want any
---@param msg string?
function eq(got, want, msg) end
---@param v any
---@param msg string?
function is_nil(v, msg) end
---@param v any
---@param msg string?
function is_true(v, msg) end
---@param haystack string|table
---@param needle any
---@param msg string?
function contains(haystack, needle, msg) end
---@param decision TestDecision?
---@param msg string?
function silent(decision, msg) end
