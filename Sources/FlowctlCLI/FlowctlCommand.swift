import ArgumentParser
import Foundation

/// The root command. Each subcommand lives in its own file.
public struct FlowctlCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "flowctl",
        abstract: "Keeps the nft flowtable fast path switched on for the VMs and containers behind your bridges.",
        version: "0.1.0",
        subcommands: [
            EnableCommand.self, DisableCommand.self, StatusCommand.self, PlanCommand.self, DoctorCommand.self,
            DaemonCommand.self, ReevaluateCommand.self, ApplyCommand.self, BenchCommand.self, TrafficCommand.self,
        ])

    public init() {}
}

extension FlowctlCommand {
    /// What `flowctl ARGUMENTS` prints and exits with. Usage errors get the
    /// same `flowctl: error:` line as every other error, then the usage
    /// (exit 64, EX_USAGE); --help and --version print as usual.
    public static func outcome(of arguments: [String]) -> (standardError: String, exitCode: Int32)? {
        let parsed: ParsableCommand
        do { parsed = try parseAsRoot(arguments) } catch {
            let code = exitCode(for: error)
            if code == .success { return nil }  // --help, --version: ArgumentParser prints them
            let message = Self.message(for: error).split(separator: "\n").joined(separator: "; ")
            let usage = fullMessage(for: error).split(separator: "\n", omittingEmptySubsequences: false)
                .drop { !$0.hasPrefix("Usage:") }.joined(separator: "\n")
            return ("flowctl: error: \(message)\n" + (usage.isEmpty ? "" : usage + "\n"), code.rawValue)
        }
        _ = parsed
        return nil
    }

    /// The entry point of the `flowctl` executable.
    public static func runMain() async -> Never {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let usageError = outcome(of: arguments) {
            Runtime.standardError(usageError.standardError)
            Foundation.exit(usageError.exitCode)
        }
        await main(arguments)
        Foundation.exit(0)
    }
}
