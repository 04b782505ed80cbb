import XCTest

/// Tests/lab/rule-content-e2e.sh in the lab kernel: a rule of flowctl's
/// replaced under its own comment (`nft replace rule ... drop comment
/// "flowctl/v2 iifname tcp"`) is found by its content and put back by the
/// daemon, `status` and `enable`; `plan` shows it; an untouched table reads
/// back equal to what flowctl sends (nothing rebuilt).
final class RuleContentEndToEndTests: XCTestCase {
    func testTamperedRuleIsRepairedByContent() throws {
        try Lab.runEndToEnd("Tests/lab/rule-content-e2e.sh", passLine: "PASS rule-content-e2e")
    }
}
