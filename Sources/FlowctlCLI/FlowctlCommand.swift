import ArgumentParser

/// The root command. Each subcommand lives in its own file.
public struct FlowctlCommand: ParsableCommand {
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
