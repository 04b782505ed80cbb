import ArgumentParser

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "doctor", abstract: "TODO")
    func run() throws { throw ValidationError("doctor: not implemented yet") }
}
