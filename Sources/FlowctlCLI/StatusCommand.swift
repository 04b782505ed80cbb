import ArgumentParser

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "TODO")
    func run() throws { throw ValidationError("status: not implemented yet") }
}
