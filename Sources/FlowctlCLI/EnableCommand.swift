import ArgumentParser

struct EnableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enable", abstract: "TODO")
    func run() throws { throw ValidationError("enable: not implemented yet") }
}
