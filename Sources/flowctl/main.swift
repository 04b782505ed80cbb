import FlowctlCLI
FlowctlCommand.main()
