import ArgumentParser

struct DisableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disable", abstract: "TODO")
    func run() throws { throw ValidationError("disable: not implemented yet") }
}
