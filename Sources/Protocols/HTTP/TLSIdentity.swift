import Foundation
import NIOConcurrencyHelpers
import NIOSSL

/// The HTTPS listener's certificate chain and key (`http.tls`), loaded from PEM files and
/// replaced in place on reload: a connection takes the identity in force when it opens.
public final class TLSIdentity: Sendable {
    public let certificatePath: String
    public let keyPath: String
    private let current: NIOLockedValueBox<(context: NIOSSLContext, summary: String)>

    /// Loads both files; throws, naming the file, on anything a client would fail on later:
    /// unreadable or empty PEM, a key that is not the certificate's, a certificate not yet or
    /// no longer valid.
    public init(certificate: String, key: String) throws {
        certificatePath = certificate
        keyPath = key
        current = NIOLockedValueBox(try Self.load(certificate: certificate, key: key))
    }

    public var context: NIOSSLContext { current.withLockedValue { $0.context } }
    /// "CN=boot.lab, 2 certificates, valid until 2027-12-07T05:00:00Z".
    public var summary: String { current.withLockedValue { $0.summary } }

    /// Reads the files again (SIGHUP). On success the new identity serves every connection
    /// opened from now on; on failure the old one stays and the error says why.
    @discardableResult
    public func reload() throws -> String {
        let loaded = try Self.load(certificate: certificatePath, key: keyPath)
        current.withLockedValue { $0 = loaded }
        return loaded.summary
    }

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    static func load(certificate: String, key: String) throws -> (context: NIOSSLContext, summary: String) {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw LoadError(description: "http.tls.certificate \(certificate): cannot read a PEM certificate: \(error)")
        }
        guard let leaf = chain.first else {
            throw LoadError(description: "http.tls.certificate \(certificate): holds no certificate")
        }
        let privateKey: NIOSSLPrivateKey
        do {
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw LoadError(description: "http.tls.key \(key): cannot read a PEM private key: \(error)")
        }
        let now = time(nil)
        let until = Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter))
        let from = Date(timeIntervalSince1970: TimeInterval(leaf.notValidBefore))
        let iso = ISO8601DateFormatter()
        guard leaf.notValidAfter > now else {
            throw LoadError(description: "http.tls.certificate \(certificate): expired on \(iso.string(from: until)); clients would refuse it")
        }
        guard leaf.notValidBefore <= now else {
            throw LoadError(description: "http.tls.certificate \(certificate): not valid before \(iso.string(from: from)) (is this machine's clock right?)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw LoadError(description: "http.tls: the key \(key) does not go with the certificate \(certificate) (or cannot be used): \(error)")
        }
        let subject = leaf.description
        return (context, "\(subject), \(chain.count) certificate\(chain.count == 1 ? "" : "s"), valid until \(iso.string(from: until))")
    }
}
