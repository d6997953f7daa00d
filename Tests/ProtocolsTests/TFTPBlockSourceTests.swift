import NIOCore
import Testing
@testable import Protocols

@Suite struct TFTPBlockSourceTests {
    func netascii(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for b in input {
            switch b {
            case 0x0A: out += [0x0D, 0x0A]
            case 0x0D: out += [0x0D, 0x00]
            default: out.append(b)
            }
        }
        return out
    }

    /// Reads every block in order, going back over the previous window now and then as a
    /// retransmission would, and checks the bytes and the block count.
    @Test(arguments: [1, 2, 8], [8, 9, 512])
    func netasciiAcrossBlockBoundaries(windowSize: Int, blockSize: Int) {
        var input: [UInt8] = []
        var state: UInt64 = 12345
        for _ in 0..<3000 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            input.append([0x0A, 0x0D, 0x41, 0x42][Int(state % 4)])
        }
        let expected = netascii(input)
        #expect(TFTPBlockSource.transferSize(of: .bytes(input), netascii: true) == UInt64(expected.count))
        var source = TFTPBlockSource(content: .bytes(input), netascii: true, blockSize: blockSize, windowSize: windowSize)
        var output: [UInt8] = []
        var block: UInt64 = 1
        var rewound = Set<UInt64>()
        while true {
            var buffer = ByteBuffer()
            guard let n = source.append(block: block, to: &buffer) else { Issue.record("no checkpoint for \(block)"); return }
            if block % 5 == 0, windowSize > 1, rewound.insert(block).inserted {
                // Retransmit from the start of the window (up to windowSize - 1 blocks back).
                let back = UInt64(windowSize - 1)
                let from = block > back ? block - back : 1
                output.removeLast(min(output.count, Int(block - from) * blockSize))
                block = from
                continue
            }
            output += buffer.readableBytesView
            if n < blockSize { break }
            block += 1
        }
        #expect(output == expected)
        #expect(block == UInt64(expected.count / blockSize + 1))
    }

    @Test func octetBlocksAndEmptyLastBlock() {
        var source = TFTPBlockSource(content: .bytes(Array(repeating: 7, count: 1024)), netascii: false, blockSize: 512, windowSize: 1)
        #expect(source.lastBlock == 3)
        var buffer = ByteBuffer()
        #expect(source.append(block: 2, to: &buffer) == 512)
        #expect(source.append(block: 3, to: &buffer) == 0)
        #expect(source.append(block: 1, to: &buffer) == 512)
    }
}
