import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Each client's last DHCP datagram, by MAC, in one block allocated up front: what ClientDirectory
/// keeps so a client's TFTP and HTTP requests can be told what its DHCP request said.
///
/// Why not a dictionary of arrays (`ClientCache`, which it replaced here): every ProxyDHCP answer
/// stores one datagram and, under a flood of new MACs, pushes an old one out. As a dictionary
/// entry that was a malloc, a hash-table insert, a lookup and delete of the oldest key, and a
/// free of memory long out of cache: about a seventh of the answer's user-space time in perf.
/// Here a store is a copy into a fixed slot, with no allocation and nothing to free.
///
/// Set-associative, like a CPU cache: a MAC hashes to one set of `ways` slots, and a new client
/// takes an empty slot of its set or the one stored longest ago. So a client can be pushed out
/// before `capacity` newer clients have come, if `ways` of them land in its set first; with 8
/// ways and 2,048 sets the chance that 1,000 newer clients do is about 1 in 20 million.
/// Datagrams longer than a slot (rare: PXE ROMs send at most 576 bytes) are kept aside.
/// Not thread-safe; the owner locks.
final class DatagramCache {
    static let ways = 8
    /// RFC 2131's minimum maximum message size: what a PXE ROM's requests fit in.
    static let slotBytes = 576

    let capacity: Int
    let ttlNanoseconds: UInt64
    private let setMask: Int
    /// Per slot: 0 when empty, else the packed MAC + 1, or a hash of a textual key with bit 62
    /// set (the key itself is then in `texts`).
    private var tags: [UInt64]
    /// Per slot: monotonic nanoseconds when stored (age for the time to live, and which way of
    /// a set to replace).
    private var stamps: [UInt64]
    /// Per slot: bytes held inline, or -1 when the datagram is in `oversized`.
    private var lengths: [Int32]
    private var texts: [Int: String] = [:]
    private var oversized: [Int: [UInt8]] = [:]
    /// Pages are touched only as slots are first used: a quiet server stays small. The block is
    /// laid out way by way (every set's way 0, then every set's way 1, ...), while the per-slot
    /// arrays above stay set by set for the lookup. A new client lands in a random set, but
    /// takes its first empty way: so the first clients fill way 0's 1.2 MB before way 1 is
    /// touched, instead of spreading over all 9.4 MB, a page fault each.
    private let block: UnsafeMutableRawPointer
    /// The block's mmap(2) length, or 0 when it came from malloc (mmap refused).
    private let mappedLength: Int

    init(capacity: Int, ttl: Double) {
        var sets = 1
        while sets * Self.ways < capacity { sets *= 2 }
        self.capacity = sets * Self.ways
        setMask = sets - 1
        ttlNanoseconds = UInt64(max(0, ttl) * 1e9)
        tags = Array(repeating: 0, count: self.capacity)
        stamps = Array(repeating: 0, count: self.capacity)
        lengths = Array(repeating: 0, count: self.capacity)
        // Its own mapping, not malloc's: fresh pages the kernel provides on first touch (malloc
        // may hand back a heap region already touched), page-aligned, and unmapped on deinit.
        let length = self.capacity * Self.slotBytes
        let mapped = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if let mapped, mapped != MAP_FAILED {
            block = mapped
            mappedLength = length
        } else {
            block = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 64)
            mappedLength = 0
        }
    }

    deinit {
        if mappedLength > 0 { munmap(block, mappedLength) } else { block.deallocate() }
    }

    /// Where slot `slot` (set * ways + way) keeps its bytes.
    private func bytes(_ slot: Int) -> UnsafeMutableRawPointer {
        block + ((slot % Self.ways) * (setMask + 1) + slot / Self.ways) * Self.slotBytes
    }

    /// Bytes of the block the kernel has given pages for (mincore(2)): what the cache costs in
    /// RSS so far.
    var residentBytes: Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = Int(bitPattern: block) & ~(page - 1)
        let length = Int(bitPattern: block) + capacity * Self.slotBytes - start
        var vector = [UInt8](repeating: 0, count: (length + page - 1) / page)
        guard mincore(UnsafeMutableRawPointer(bitPattern: start), length, &vector) == 0 else { return -1 }
        return vector.reduce(0) { $0 + Int($1 & 1) } * page
    }

    /// Slots in use, expired ones included until they are replaced.
    var count: Int { tags.reduce(0) { $0 + ($1 == 0 ? 0 : 1) } }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    private func tag(_ key: ClientKey) -> UInt64 {
        if key.text == nil { return key.packed &+ 1 }
        return UInt64(UInt(bitPattern: key.text.hashValue)) & ((1 << 62) - 1) | (1 << 62)
    }

    private func firstSlot(_ tag: UInt64) -> Int {
        // Fibonacci hashing: the top bits of the product spread MACs that differ in any byte.
        let mixed = tag &* 0x9E37_79B9_7F4A_7C15
        return (Int(truncatingIfNeeded: mixed >> 32) & setMask) * Self.ways
    }

    private func find(_ key: ClientKey, _ tag: UInt64, from first: Int) -> Int? {
        for slot in first..<(first + Self.ways) where tags[slot] == tag {
            if key.text == nil || texts[slot] == key.text { return slot }
        }
        return nil
    }

    func set(_ mac: String, _ datagram: UnsafeRawBufferPointer, now: UInt64 = DatagramCache.now()) {
        let key = ClientKey(mac)
        let tag = tag(key)
        let first = firstSlot(tag)
        let slot = find(key, tag, from: first) ?? {
            // An empty way, else the one stored longest ago.
            var chosen = first
            for way in first..<(first + Self.ways) {
                if tags[way] == 0 { return way }
                if stamps[way] < stamps[chosen] { chosen = way }
            }
            return chosen
        }()
        tags[slot] = tag
        stamps[slot] = now
        if key.text != nil || !texts.isEmpty { texts[slot] = key.text }
        if datagram.count <= Self.slotBytes {
            if lengths[slot] < 0 { oversized[slot] = nil }
            lengths[slot] = Int32(datagram.count)
            if let base = datagram.baseAddress {
                bytes(slot).copyMemory(from: base, byteCount: datagram.count)
            }
        } else {
            lengths[slot] = -1
            oversized[slot] = Array(datagram)
        }
    }

    func get(_ mac: String, now: UInt64 = DatagramCache.now()) -> [UInt8]? {
        let key = ClientKey(mac)
        let tag = tag(key)
        guard let slot = find(key, tag, from: firstSlot(tag)), now &- stamps[slot] < ttlNanoseconds else { return nil }
        if lengths[slot] < 0 { return oversized[slot] }
        return Array(UnsafeRawBufferPointer(start: bytes(slot), count: Int(lengths[slot])))
    }
}
