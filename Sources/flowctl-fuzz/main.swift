// libFuzzer harnesses for flowctl's decoders: every input the kernel, a
// client or a file can hand them. Built and run by scripts/fuzz (with
// -sanitize=fuzzer,address and -D FLOWCTL_FUZZING); a plain build only
// says so. The target is the first argument; the rest go to libFuzzer:
//   flowctl-fuzz TARGET [LIBFUZZER OPTIONS] [CORPUS DIRS]
import Foundation

enum FuzzTarget: String, CaseIterable {
    case netlinkAttributes = "netlink-attributes"
    case netlinkReplies = "netlink-replies"
    case nftNotification = "nft-notification"
    case conntrack
    case rtnetlink
    case controlRequest = "control-request"
    case daemonConfiguration = "daemon-configuration"
    case scenario
}

#if FLOWCTL_FUZZING
@testable import FlowctlBench
import FlowctlCore
@testable import FlowctlDaemon
@testable import FlowctlLinux

extension FuzzTarget {
    func run(_ bytes: [UInt8]) {
        switch self {
        case .netlinkAttributes:
            for attribute in NetlinkAttributes(bytes[...]) {
                _ = attribute.string
                _ = attribute.bigEndianU32
                _ = attribute.u32
                for inner in attribute.nested { _ = inner.u8 }
            }
        case .netlinkReplies:
            bytes.withUnsafeBytes { raw in
                for reply in NetlinkReply.split(raw) {
                    _ = reply.errorCode
                    _ = reply.erroredSeq
                    _ = reply.extendedAckMessage
                }
            }
        case .nftNotification:
            var touched = Set<TableRef>()
            _ = NftNotification.decode(bytes, touched: &touched)
        case .conntrack:
            _ = ConntrackReader.status(bytes)
        case .rtnetlink:
            _ = RtnetlinkDecoder.decode(message: bytes)
        case .controlRequest:
            // As the control server frames and decodes a request line.
            let line = bytes.firstIndex(of: UInt8(ascii: "\n")).map { bytes[..<$0] } ?? bytes[...]
            _ = try? JSONDecoder().decode(ControlRequest.self, from: Data(line))
        case .daemonConfiguration:
            _ = try? DaemonConfiguration.parse(String(decoding: bytes, as: UTF8.self), path: "fuzz.toml")
        case .scenario:
            if let scenario = try? Scenario.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.toml") {
                _ = try? TopologyPlan(scenario)
            }
        }
    }
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

let arguments = CommandLine.arguments
guard arguments.count >= 2, let target = FuzzTarget(rawValue: arguments[1]) else {
    FileHandle.standardError.write(Data("usage: flowctl-fuzz TARGET [LIBFUZZER OPTIONS] [CORPUS DIRS]; targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
    exit(64)
}
// libFuzzer's callback cannot capture: the target is a global, set once
// here before the driver starts, read by the driver's one thread.
nonisolated(unsafe) var selected = target

/// libFuzzer's entry point (its runtime refers to it by name).
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selected.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
var driverArguments = [arguments[0]] + arguments.dropFirst(2)
var argc = Int32(driverArguments.count)
var cStrings: [UnsafeMutablePointer<CChar>?] = driverArguments.map { strdup($0) } + [nil]
let status = cStrings.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput)
}
exit(status)
#else
FileHandle.standardError.write(Data("flowctl-fuzz: built without the fuzzer; run scripts/fuzz\n".utf8))
exit(64)
#endif
