import FlowctlCore
import FlowctlLinux
import FlowctlTesting
import Foundation

/// nftables edge commands for the host and lab tiers:
///   nft-dump FAMILY NAME        KernelTable JSON (or `null`)
///   nft-apply [--check] [--generation N | --stale-generation]   NftBatch JSON on stdin
///   nft-generation              the ruleset generation id
///   nft-forward                 ForwardChainInfo JSON of every forward chain
///   nft-debug                   libnftnl's text of each message of an NftBatch on stdin
///   nft-sequence FAMILY NAME    [NftSequenceStep] JSON on stdin -> [NftSequenceResult] JSON
enum KitNftables {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }()

    static func emit<T: Encodable>(_ value: T) throws {
        FileHandle.standardOutput.write(try encoder.encode(value))
        FileHandle.standardOutput.write(Data("\n".utf8))
    }

    static func dump(_ args: [String]) throws {
        guard args.count == 2, let family = NftFamily(rawValue: args[0]) else {
            throw KitError.usage("nft-dump FAMILY NAME")
        }
        try emit(try NftablesBackend().table(TableRef(family: family, name: args[1])))
    }

    static func readBatch() throws -> NftBatch {
        let input = FileHandle.standardInput.readDataToEndOfFile()
        return try JSONDecoder().decode(NftBatch.self, from: input)
    }

    static func apply(_ args: [String]) throws {
        let backend = NftablesBackend()
        let batch = try readBatch()
        do {
            if args.contains("--check") {
                try backend.validate(batch)
            } else if let index = args.firstIndex(of: "--generation"), index + 1 < args.count,
                      let generation = UInt32(args[index + 1]) {
                try backend.apply(batch, generation: generation)
            } else if args.contains("--stale-generation") {
                try backend.apply(batch, generation: try backend.generation() &- 1)
            } else {
                try backend.apply(batch, generation: try backend.generation())
            }
        } catch let error as BatchError {
            // Machine-readable failure for the tests: errno and failing command.
            try emit(["errno": "\(error.error.errno)", "command": error.command ?? "", "error": error.description])
            exit(2)
        }
    }

    /// The kernel's side of FakeKernelAgreementTests: link steps with `ip`.
    static func sequence(_ args: [String]) throws {
        guard args.count == 2, let family = NftFamily(rawValue: args[0]) else {
            throw KitError.usage("nft-sequence FAMILY NAME")
        }
        let steps = try JSONDecoder().decode([NftSequenceStep].self, from: FileHandle.standardInput.readDataToEndOfFile())
        let results = try NftSequence.run(steps, table: TableRef(family: family, name: args[1]),
                                          backend: NftablesBackend()) { step in
            switch step {
            case .linkAdd(let name): try KitHotplug.ip(["link", "add", name, "type", "dummy"])
            case .linkDelete(let name): try KitHotplug.ip(["link", "del", name])
            case .batch: break
            }
        }
        try emit(results)
    }

    static func generation(_ args: [String]) throws {
        print(try NftablesBackend().generation())
    }

    static func forward(_ args: [String]) throws {
        try emit(try NftablesBackend().forwardChains())
    }

    static func debug(_ args: [String]) throws {
        let batch = try readBatch()
        for change in batch.changes {
            for text in NftablesBackend.debugText(for: change, in: batch.table) { print(text) }
        }
    }
}

enum KitError: Error, CustomStringConvertible {
    case usage(String)
    var description: String {
        switch self { case .usage(let text): "usage: flowctl-kit \(text)" }
    }
}
