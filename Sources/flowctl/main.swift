import FlowctlCLI
FlowctlCommand.runMain()
