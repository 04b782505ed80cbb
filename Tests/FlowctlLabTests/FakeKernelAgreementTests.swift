import FlowctlCore
import FlowctlTesting
import Foundation
import XCTest

/// The fake nf_tables the unit tiers use must answer as the kernel does:
/// the same sequence of batches and device changes (NftSequence) runs in
/// the lab kernel (flowctl-kit nft-sequence) and against
/// FakeRulesetBackend; every step must give the same errno and leave the
/// same table.
final class FakeKernelAgreementTests: XCTestCase {
    func testFakeAnswersAsTheLabKernel() throws {
        let table = TableRef(family: .inet, name: "flowctl_seq")
        let steps = NftSequence.kernelSemantics(table: table)

        let fake = FakeRulesetBackend()
        fake.existingDevices = []
        let faked = try NftSequence.run(steps, table: table, backend: fake) { step in
            switch step {
            case .linkAdd(let name): fake.deviceAdded(name)
            case .linkDelete(let name): fake.deviceRemoved(name)
            case .batch: break
            }
        }

        // The lab sees the repository read-only: the steps go in a file under .build.
        let input = Lab.repoRoot.appendingPathComponent(".build/lab-input")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        let file = input.appendingPathComponent("nft-sequence-\(UUID().uuidString).json")
        try JSONEncoder().encode(steps).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let kit = Subprocess.product("flowctl-kit")
        let result = try Lab.run(["sh", "-c", "\"$0\" nft-sequence inet flowctl_seq < \"$1\"", kit, file.path])
        XCTAssertEqual(result.status, 0, "\(result)")
        let kernel = try JSONDecoder().decode([NftSequenceResult].self, from: Data(result.stdout.utf8))

        XCTAssertEqual(kernel.count, steps.count)
        for (index, (kernelResult, fakeResult)) in zip(kernel, faked).enumerated() {
            XCTAssertEqual(fakeResult, kernelResult, "step \(index) (\(steps[index])): the fake answers unlike the kernel")
        }
    }
}
