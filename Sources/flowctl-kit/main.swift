// flowctl-kit: a test-only tool that exposes the FlowctlLinux edges one by
// one, so host and lab tests can run them inside a fresh network namespace
// (`unshare -n`, `ip netns exec`) as a child process, never by setns from
// the test process. Not installed; not for users.
import Foundation

let subcommands: [String: ([String]) throws -> Void] = [
    "topology": KitTopology.run,      // KitTopology.swift: print Topology JSON
    "nft-dump": KitNftables.dump,     // KitNftables.swift: print KernelTable JSON of one table
    "nft-apply": KitNftables.apply,   // KitNftables.swift: read NftBatch JSON on stdin, apply
    "nft-generation": KitNftables.generation,
    "nft-forward": KitNftables.forward,
    "nft-debug": KitNftables.debug,
    "nft-sequence": KitNftables.sequence, // KitNftables.swift: batches and link steps, errno and table after each
    "plan-bench": KitPlanBench.run,   // KitPlanBench.swift: CPU cost of plan and diff
    "engine-bench": KitEngineBench.run,   // KitEngineBench.swift: the daemon's userland pass per route event
    "hotplug-bench": KitHotplug.run,  // KitHotplug.swift: daemon hotplug latency (Bench/hotplug.sh)
    "conntrack": KitConntrack.run,    // KitConntrack.swift: print ConntrackSummary JSON
]

let arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, let run = subcommands[name] else {
    FileHandle.standardError.write(Data("usage: flowctl-kit \(subcommands.keys.sorted().joined(separator: "|")) [args]\n".utf8))
    exit(64)
}
do {
    try run(Array(arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("flowctl-kit \(name): \(error)\n".utf8))
    exit(1)
}
