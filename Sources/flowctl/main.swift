import FlowctlCLI
await FlowctlCommand.runMain()
