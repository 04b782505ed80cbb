import FlowctlCore
import XCTest

/// The check before the TOML parser: a non-ASCII character where TOML
/// allows none is refused with its line, instead of reaching toml++,
/// whose assertion aborted the process (found by scripts/fuzz).
final class TOMLTextTests: XCTestCase {
    func testNonASCIIOutsideStringsAndCommentsIsRefusedWithItsLine() throws {
        // The fuzzer's input, reduced: a replacement character in a table header.
        let problem = try XCTUnwrap(TOMLText.check("log_level = \"info\"\n\n[\u{FFFD}bridge]]\nname = \"x\"\n"))
        XCTAssertEqual(problem.line, 3)
        XCTAssertEqual(problem.column, 2)
        XCTAssertTrue(problem.message.contains("U+FFFD outside a string or comment"), problem.message)
        XCTAssertEqual(TOMLText.check("clé = 1\n")?.line, 1)
    }

    func testNonASCIIInStringsAndCommentsIsFine() {
        XCTAssertNil(TOMLText.check("""
            # Kommentar: grüße
            name = "brücke"       # é
            path = 'C:\\ü'
            text = \"\"\"
            zwei "Zeilen" ü
            \"\"\"
            raw = '''
            ü ' ü
            '''
            escaped = "a \\" ü"
            [table]
            "quoted ü key" = 1
            """))
    }

    func testAStringEndsAtItsLineAndACommentAtItsNewline() {
        // An unterminated basic string does not swallow the next line.
        XCTAssertEqual(TOMLText.check("a = \"open\nü = 1\n")?.line, 2)
        XCTAssertEqual(TOMLText.check("# ü\nü = 1\n")?.line, 2)
    }
}
